"""Dead letters in process memory (development, and the fallback of the Redis store)."""

from __future__ import annotations

import builtins
from collections import OrderedDict

from agentfleet_runtime.deadletters.base import DeadLetter, DeadLetterStatus

__all__ = ["MemoryDeadLetterStore"]


class MemoryDeadLetterStore:
    """Keeps at most ``max_letters`` (the oldest are dropped first)."""

    def __init__(self, max_letters: int = 10_000) -> None:
        self._letters: OrderedDict[str, DeadLetter] = OrderedDict()
        self._max = max_letters

    async def add(self, letter: DeadLetter) -> None:
        self._letters[letter.id] = letter.model_copy()
        while len(self._letters) > self._max:
            self._letters.popitem(last=False)

    async def get(self, letter_id: str) -> DeadLetter | None:
        letter = self._letters.get(letter_id)
        return letter.model_copy() if letter is not None else None

    async def list(
        self,
        *,
        agent: str | None = None,
        status: DeadLetterStatus | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        for letter in reversed(self._letters.values()):
            if (agent is None or letter.agent == agent) and (
                status is None or letter.status == status
            ):
                found.append(letter.model_copy())
                if len(found) >= limit:
                    break
        return found

    async def put(self, letter: DeadLetter) -> None:
        if letter.id in self._letters:
            self._letters[letter.id] = letter.model_copy()
        else:
            await self.add(letter)

    async def delete(self, letter_id: str) -> bool:
        return self._letters.pop(letter_id, None) is not None

    def drain(self) -> builtins.list[DeadLetter]:
        """Everything kept, oldest first, emptying the store (a resync takes it all)."""
        letters = list(self._letters.values())
        self._letters.clear()
        return letters

    def __len__(self) -> int:
        return len(self._letters)

    async def aclose(self) -> None:
        return None
