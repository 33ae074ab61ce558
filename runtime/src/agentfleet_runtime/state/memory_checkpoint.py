"""The memory backend's LangGraph checkpointer: :class:`InMemorySaver` keeping values as
Python objects instead of serialising them.

``InMemorySaver`` msgpack-encodes every checkpoint on write and decodes it on read, as a
database saver must. In one process that buys nothing but isolation from later in-place
changes, and it costs a full encode and decode of the conversation on every turn (about
3% of the runtime's CPU in the turn benchmark, growing with the conversation). Here the
isolation comes from copying containers instead: a checkpoint's own dicts (channel
versions, versions seen) are copied on the way in and out, and lists (the conversation)
are copied shallowly. The messages themselves are shared: the runtime never changes a
message after creating it (the ``messages`` reducer builds a new list each step).
"""

from __future__ import annotations

from typing import Any, cast

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.base import SerializerProtocol

_TYPE = "python"


def _copy(value: Any) -> Any:
    """A copy deep enough that the saver and the running graph never share a container
    that either changes in place: dicts all the way down (a checkpoint's ``versions_seen``
    is a dict of dicts; they are small), lists shallowly (their items are messages)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return list(value)
    return value


class InProcessSerializer:
    """A :class:`SerializerProtocol` that keeps objects (copied) instead of bytes."""

    def dumps_typed(self, obj: Any) -> tuple[str, Any]:
        return _TYPE, _copy(obj)

    def loads_typed(self, data: tuple[str, Any]) -> Any:
        kind, value = data
        if kind != _TYPE:  # e.g. ("empty", b"") markers the saver writes itself
            return value
        return _copy(value)


def memory_checkpointer() -> InMemorySaver:
    return InMemorySaver(serde=cast(SerializerProtocol, InProcessSerializer()))
