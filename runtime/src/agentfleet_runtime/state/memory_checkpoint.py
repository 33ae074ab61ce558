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

:meth:`InProcessSaver.aprune` (``InMemorySaver`` has none) drops a thread's older
checkpoints: the AgentService prunes each session after every completed turn, since each
checkpoint holds its own copy of the conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
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


class InProcessSaver(InMemorySaver):
    """``InMemorySaver`` with :meth:`aprune`."""

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: only each namespace's newest checkpoint, its pending writes and
        the channel values it references stay; ``delete``: the threads go."""
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
                continue
            for namespace, saved in self.storage.get(thread_id, {}).items():
                if len(saved) <= 1:
                    continue
                newest, *older = sorted(saved, reverse=True)  # ids sort by creation
                keep = self.serde.loads_typed(saved[newest][0])["channel_versions"]
                for old_id in older:
                    versions = self.serde.loads_typed(saved.pop(old_id)[0])["channel_versions"]
                    for channel, version in versions.items():
                        if keep.get(channel) != version:
                            self.blobs.pop((thread_id, namespace, channel, version), None)
                    self.writes.pop((thread_id, namespace, old_id), None)


def memory_checkpointer() -> InProcessSaver:
    return InProcessSaver(serde=cast(SerializerProtocol, InProcessSerializer()))
