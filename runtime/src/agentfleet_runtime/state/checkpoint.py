"""A LangGraph checkpointer on plain Redis data types (no RedisJSON/RediSearch modules).

``langgraph-checkpoint-redis`` needs Redis Stack modules and pulls numpy; this saver
implements :class:`BaseCheckpointSaver`'s async interface with hashes and sorted sets, so
it runs on any Redis 6.2+. Layout per thread ``t`` and checkpoint namespace ``ns``
(``<c>`` = ``<prefix>:<tenant>:cp:{t}``, the hash tag keeps a thread in one slot):

===========================  ======  ==================================================
``<c>:namespaces``           SET     the thread's checkpoint namespaces
``<c>:<ns>:ids``             ZSET    checkpoint ids, all scored 0: lexicographic order
                                     is creation order (ids are UUIDv6)
``<c>:<ns>:c:<id>``          HASH    ``checkpoint``, ``metadata`` (serde-typed
                                     ``<type>\\0<bytes>``), ``parent``
``<c>:<ns>:w:<id>``          HASH    pending writes, field ``<task id>\\0<idx>``
``<c>:<ns>:blobs``           HASH    channel values, field ``<channel>\\0<version>``
``<prefix>:<tenant>:cp:threads``  SET  every thread (for listing without a thread)
===========================  ======  ==================================================

Every key of a thread gets the session TTL on each write. Only the async methods are
implemented (the runtime only uses ``ainvoke``/``aget_state``); the sync ones raise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from agentfleet_runtime.state.redis_client import Keys, text, translate_errors

SEP = b"\x00"


def _pack(typed: tuple[str, bytes]) -> bytes:
    return typed[0].encode() + SEP + typed[1]


def _unpack(raw: Any) -> tuple[str, bytes]:
    kind, _, data = bytes(raw).partition(SEP)
    return text(kind), data


class AsyncOnlySaver(BaseCheckpointSaver[str]):
    """A checkpointer that offers only LangGraph's async interface (the runtime only uses
    ``ainvoke``/``aget_state``): the sync methods raise, naming the async one to use."""

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        raise NotImplementedError(f"{type(self).__name__} is async-only: use aget_tuple")

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        raise NotImplementedError(f"{type(self).__name__} is async-only: use alist")

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        raise NotImplementedError(f"{type(self).__name__} is async-only: use aput")

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        raise NotImplementedError(f"{type(self).__name__} is async-only: use aput_writes")


class RedisCheckpointSaver(AsyncOnlySaver):
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        *,
        ttl_seconds: int = 0,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._r = client
        self._k = keys
        self._ttl = ttl_seconds or None

    # -- keys ---------------------------------------------------------------------------

    def _thread(self, thread_id: str) -> str:
        return self._k.checkpoint_prefix(thread_id)

    def _ns(self, thread_id: str, ns: str) -> str:
        return f"{self._thread(thread_id)}:{ns}"

    # -- reading ------------------------------------------------------------------------

    async def _tuple(self, thread_id: str, ns: str, checkpoint_id: str) -> CheckpointTuple | None:
        base = self._ns(thread_id, ns)
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hgetall(f"{base}:c:{checkpoint_id}")
            pipe.hgetall(f"{base}:w:{checkpoint_id}")
            result: Any = await pipe.execute()
        stored, writes_raw = result
        if not stored:
            return None
        checkpoint: Checkpoint = self.serde.loads_typed(_unpack(stored[b"checkpoint"]))
        metadata: CheckpointMetadata = self.serde.loads_typed(_unpack(stored[b"metadata"]))
        parent = text(stored.get(b"parent", b"")) or None
        versions = checkpoint["channel_versions"]
        values: dict[str, Any] = {}
        if versions:
            fields = [f"{ch}\x00{ver}" for ch, ver in versions.items()]
            blobs = await self._r.hmget(f"{base}:blobs", fields)
            for channel, blob in zip(versions, blobs, strict=True):
                if blob is None:
                    continue
                kind, data = _unpack(blob)
                if kind != "empty":
                    values[channel] = self.serde.loads_typed((kind, data))
        pending: list[tuple[tuple[str, str, int], PendingWrite]] = []
        for field, raw in writes_raw.items():
            task_id, _, idx = text(field).partition("\x00")
            channel, kind, path, data = raw.split(SEP, 3)
            pending.append(
                (
                    writes_sort_key(text(path), task_id, int(idx)),
                    (task_id, text(channel), self.serde.loads_typed((text(kind), data))),
                )
            )
        pending.sort(key=lambda item: item[0])
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": checkpoint_id,
                }
            },
            checkpoint={**checkpoint, "channel_values": values},
            metadata=metadata,
            parent_config=(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": ns,
                        "checkpoint_id": parent,
                    }
                }
                if parent
                else None
            ),
            pending_writes=[write for _, write in pending],
        )

    @translate_errors
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        thread_id: str = configurable["thread_id"]
        ns: str = configurable.get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)
        if not checkpoint_id:
            latest = await self._r.zrevrange(f"{self._ns(thread_id, ns)}:ids", 0, 0)
            if not latest:
                return None
            checkpoint_id = text(latest[0])
        return await self._tuple(thread_id, ns, checkpoint_id)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if config is not None:
            threads = [config["configurable"]["thread_id"]]
        else:
            threads = sorted(text(m) for m in await self._r.smembers(self._k.checkpoint_threads))
        wanted_ns = config["configurable"].get("checkpoint_ns") if config else None
        wanted_id = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        remaining = limit
        for thread_id in threads:
            if wanted_ns is not None:
                namespaces = [wanted_ns]
            else:
                members = await self._r.smembers(f"{self._thread(thread_id)}:namespaces")
                namespaces = sorted(text(m) for m in members)
            for ns in namespaces:
                ids = [
                    text(i)
                    for i in await self._r.zrevrange(f"{self._ns(thread_id, ns)}:ids", 0, -1)
                ]
                for checkpoint_id in ids:
                    if wanted_id and checkpoint_id != wanted_id:
                        continue
                    if before_id and checkpoint_id >= before_id:
                        continue
                    if remaining is not None and remaining <= 0:
                        return
                    found = await self._tuple(thread_id, ns, checkpoint_id)
                    if found is None:  # expired
                        continue
                    if filter and not all(found.metadata.get(k) == v for k, v in filter.items()):
                        continue
                    if remaining is not None:
                        remaining -= 1
                    yield found

    # -- writing ------------------------------------------------------------------------

    @translate_errors
    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id: str = configurable["thread_id"]
        ns: str = configurable.get("checkpoint_ns", "")
        base = self._ns(thread_id, ns)
        stored = checkpoint.copy()
        values: dict[str, Any] = stored.pop("channel_values")  # type: ignore[misc]
        blobs = {
            f"{channel}\x00{version}": (
                _pack(self.serde.dumps_typed(values[channel]))
                if channel in values
                else b"empty" + SEP
            )
            for channel, version in new_versions.items()
        }
        record_key = f"{base}:c:{checkpoint['id']}"
        keys = [record_key, f"{base}:ids", f"{base}:blobs", f"{self._thread(thread_id)}:namespaces"]
        async with self._r.pipeline(transaction=True) as pipe:
            if blobs:
                pipe.hset(f"{base}:blobs", mapping=blobs)  # type: ignore[arg-type]
            pipe.hset(
                record_key,
                mapping={
                    "checkpoint": _pack(self.serde.dumps_typed(stored)),
                    "metadata": _pack(
                        self.serde.dumps_typed(get_checkpoint_metadata(config, metadata))
                    ),
                    "parent": configurable.get("checkpoint_id") or "",
                },
            )
            pipe.zadd(f"{base}:ids", {checkpoint["id"]: 0})
            pipe.sadd(f"{self._thread(thread_id)}:namespaces", ns)
            pipe.sadd(self._k.checkpoint_threads, thread_id)
            if self._ttl:
                for key in keys:
                    pipe.expire(key, self._ttl)
            await pipe.execute()
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    @translate_errors
    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        configurable = config["configurable"]
        base = self._ns(configurable["thread_id"], configurable.get("checkpoint_ns", ""))
        key = f"{base}:w:{configurable['checkpoint_id']}"
        async with self._r.pipeline(transaction=True) as pipe:
            for idx, (channel, value) in enumerate(writes):
                slot = WRITES_IDX_MAP.get(channel, idx)
                kind, data = self.serde.dumps_typed(value)
                packed = SEP.join([channel.encode(), kind.encode(), task_path.encode(), data])
                field = f"{task_id}\x00{slot}"
                if slot >= 0:
                    pipe.hsetnx(key, field, packed)  # a replayed write never overwrites
                else:
                    pipe.hset(key, field, packed)
            if self._ttl:
                pipe.expire(key, self._ttl)
            await pipe.execute()

    @translate_errors
    async def adelete_thread(self, thread_id: str) -> None:
        prefix = self._thread(thread_id)
        keys = [k async for k in self._r.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await self._r.delete(*keys)
        await self._r.srem(self._k.checkpoint_threads, thread_id)

    @translate_errors
    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: only each namespace's newest checkpoint (and the channel
        values it references) stays; ``delete``: the threads go."""
        for thread_id in thread_ids:
            if strategy == "delete":
                await self.adelete_thread(thread_id)
                continue
            members = await self._r.smembers(f"{self._thread(thread_id)}:namespaces")
            for ns in (text(m) for m in members):
                base = self._ns(thread_id, ns)
                async with self._r.pipeline(transaction=False) as pipe:
                    pipe.zrevrange(f"{base}:ids", 0, -1)
                    pipe.hkeys(f"{base}:blobs")
                    found: Any = await pipe.execute()
                ids = [text(i) for i in found[0]]
                if len(ids) <= 1:
                    continue
                # The newest checkpoint's channel versions (not its values: the
                # conversation is not read back just to learn which blobs to keep).
                keep = self._blob_fields(await self._r.hget(f"{base}:c:{ids[0]}", "checkpoint"))
                fields = [text(f) for f in found[1]]
                async with self._r.pipeline(transaction=True) as pipe:
                    for old in ids[1:]:
                        pipe.delete(f"{base}:c:{old}", f"{base}:w:{old}")
                    pipe.zrem(f"{base}:ids", *ids[1:])
                    drop = [f for f in fields if f not in keep]
                    if drop:
                        pipe.hdel(f"{base}:blobs", *drop)
                    await pipe.execute()

    def _blob_fields(self, stored: Any) -> set[str]:
        """The ``blobs`` fields a stored checkpoint (raw ``checkpoint`` field, or ``None``)
        references: its channel versions."""
        if stored is None:
            return set()
        versions = self.serde.loads_typed(_unpack(stored))["channel_versions"]
        return {f"{channel}\x00{version}" for channel, version in versions.items()}

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions as zero-padded strings (sortable), as LangGraph's own savers do."""
        number = 0 if current is None else int(str(current).split(".")[0])
        return f"{number + 1:032}.{0:016}"
