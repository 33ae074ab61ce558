"""Dead letters: permanently failed turns, with their input and reason (memory and Redis
stores, and the recorder the agent service calls)."""

from agentfleet_runtime.deadletters.base import DeadLetter, DeadLetterStatus, DeadLetterStore
from agentfleet_runtime.deadletters.memory import MemoryDeadLetterStore
from agentfleet_runtime.deadletters.recorder import DeadLetterRecorder

__all__ = [
    "DeadLetter",
    "DeadLetterRecorder",
    "DeadLetterStatus",
    "DeadLetterStore",
    "MemoryDeadLetterStore",
]
