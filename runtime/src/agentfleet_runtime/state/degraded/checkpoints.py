"""LangGraph checkpoints in degraded mode: a local session's checkpoints go to an
``InMemorySaver`` (complete: every channel's value, so it reads back without Redis) and,
by the resync, to Redis. The latest checkpoint of each session seen here is remembered (a
reference, not a copy) so a turn can start from it while Redis is down."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    copy_checkpoint,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.memory import InMemorySaver

from agentfleet_runtime.state.checkpoint import AsyncOnlySaver
from agentfleet_runtime.state.degraded.mode import DegradedMode, Missing, unavailable

if TYPE_CHECKING:
    from agentfleet_runtime.state.checkpoint import RedisCheckpointSaver

__all__ = ["FallbackCheckpointSaver"]


class FallbackCheckpointSaver(AsyncOnlySaver):
    """The Redis checkpointer, with an in-memory one for the sessions kept in memory."""

    def __init__(self, inner: RedisCheckpointSaver, mode: DegradedMode) -> None:
        super().__init__(serde=inner.serde)
        self._inner = inner
        self._mode = mode
        self._local = InMemorySaver(serde=inner.serde)
        mode.on_forget(self._local.delete_thread)

    @staticmethod
    def _thread(config: RunnableConfig) -> str:
        return str(config["configurable"]["thread_id"])

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread = self._thread(config)
        mode = self._mode
        latest = not get_checkpoint_id(config) and not config["configurable"].get("checkpoint_ns")
        if thread in mode.local:
            found = await self._local.aget_tuple(config)
            if found is not None:
                return found
            if latest and thread in mode.checkpoints:
                return self._cached(thread)
        try:
            found = await mode.remote(lambda: self._inner.aget_tuple(config))
        except Exception as exc:
            mode.fall_back(exc, "checkpoints.get", thread)
            if latest and thread in mode.checkpoints:
                return self._cached(thread)
            raise mode.refuse("checkpoints.get", thread) from exc
        if latest:
            cached = mode.checkpoints.get(thread)
            if found is None:
                mode.checkpoints.put(thread, None)
            elif not (
                isinstance(cached, CheckpointTuple)
                and cached.checkpoint["id"] == found.checkpoint["id"]
            ):  # a copy: LangGraph changes the checkpoint it loaded in place
                mode.checkpoints.put(
                    thread, found._replace(checkpoint=copy_checkpoint(found.checkpoint))
                )
        return found

    def _cached(self, thread: str) -> CheckpointTuple | None:
        cached = self._mode.checkpoints.get(thread)
        if not isinstance(cached, CheckpointTuple):
            return None
        return cached._replace(checkpoint=copy_checkpoint(cached.checkpoint))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if config is not None and self._thread(config) in self._mode.local:
            async for item in self._local.alist(config, filter=filter, before=before, limit=limit):
                yield item
            return
        try:
            async for item in self._inner.alist(config, filter=filter, before=before, limit=limit):
                yield item
        except Exception as exc:
            if unavailable(exc):
                raise self._mode.refuse("checkpoints.list") from exc
            raise

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread = self._thread(config)
        mode = self._mode
        written = await mode.unless_local(
            thread,
            "checkpoints.put",
            lambda: self._inner.aput(config, checkpoint, metadata, new_versions),
        )
        if not isinstance(written, Missing):
            self._remember(config, written, checkpoint, metadata)
            return written
        kept = cast(
            Checkpoint, {**checkpoint, "channel_values": dict(checkpoint["channel_values"])}
        )
        # every channel, not only the new versions: the older blobs are in Redis only
        saved = await self._local.aput(config, kept, metadata, dict(kept["channel_versions"]))
        versions = dict(new_versions)
        mode.keep(
            thread,
            "checkpoints.put",
            lambda: self._inner.aput(config, kept, metadata, versions),
        )
        self._remember(config, saved, kept, metadata)
        return saved

    def _remember(
        self,
        config: RunnableConfig,
        saved: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
    ) -> None:
        if saved["configurable"].get("checkpoint_ns", ""):
            return  # a subgraph's: the session's latest is the root namespace's
        parent = config["configurable"].get("checkpoint_id")
        self._mode.checkpoints.put(
            self._thread(config),
            CheckpointTuple(
                config=saved,
                checkpoint=checkpoint,
                metadata=get_checkpoint_metadata(config, metadata),
                parent_config=(
                    {"configurable": {**config["configurable"], "checkpoint_id": parent}}
                    if parent
                    else None
                ),
                pending_writes=[],
            ),
        )

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        thread = self._thread(config)
        mode = self._mode
        written = await mode.unless_local(
            thread,
            "checkpoints.put_writes",
            lambda: self._inner.aput_writes(config, writes, task_id, task_path),
        )
        if not isinstance(written, Missing):
            self._remember_writes(config, writes, task_id)
            return
        kept = list(writes)
        await self._local.aput_writes(config, kept, task_id, task_path)
        self._remember_writes(config, kept, task_id)
        mode.keep(
            thread,
            "checkpoints.put_writes",
            lambda: self._inner.aput_writes(config, kept, task_id, task_path),
        )

    def _remember_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        thread = self._thread(config)
        cached = self._mode.checkpoints.get(thread)
        if (
            isinstance(cached, CheckpointTuple)
            and cached.checkpoint["id"] == config["configurable"].get("checkpoint_id")
            and not config["configurable"].get("checkpoint_ns")
        ):
            pending = [*(cached.pending_writes or []), *((task_id, c, v) for c, v in writes)]
            self._mode.checkpoints.put(thread, cached._replace(pending_writes=pending))

    async def adelete_thread(self, thread_id: str) -> None:
        if thread_id in self._mode.local:
            raise self._mode.refuse("checkpoints.delete", thread_id)
        await self._mode.guarded(
            lambda: self._inner.adelete_thread(thread_id), "checkpoints.delete", thread_id
        )
        self._mode.checkpoints.pop(thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune in Redis the threads that live there; a session kept in memory is pruned
        when it is written back (its next turn after the resync)."""
        remote = [thread for thread in thread_ids if thread not in self._mode.local]
        if remote:
            await self._mode.remote(lambda: self._inner.aprune(remote, strategy=strategy))

    def get_next_version(self, current: str | None, channel: None) -> str:
        return self._inner.get_next_version(current, channel)
