"""Session transcript exports: the session's record, messages and events as one JSON
document, stored as a ``transcript`` artifact."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from agentfleet_runtime.agent.events import TurnEvent
from agentfleet_runtime.messages import Message

TRANSCRIPT_TYPE = "application/json"
#: Bumped when the document's shape changes.
TRANSCRIPT_FORMAT = "agentfleet.transcript/v1"


def transcript_json(
    session: dict[str, Any], messages: Sequence[Message], events: Sequence[TurnEvent]
) -> bytes:
    document = {
        "format": TRANSCRIPT_FORMAT,
        "exported_at": datetime.now(UTC).isoformat(),
        "session": session,
        "messages": list(messages),
        "events": list(events),
    }
    return json.dumps(document, ensure_ascii=False, default=str).encode()
