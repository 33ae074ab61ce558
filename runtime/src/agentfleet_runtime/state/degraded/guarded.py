"""Stores with no local fallback of their own, behind the ``redis`` pipeline:
:class:`GuardedStore` fails fast (``state-unavailable`` while Redis is down: API keys,
run records...); :class:`CachedStore` is a small registry (agents, tenants) whose reads
fall back to the last records seen here."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from agentfleet_runtime.state.degraded.mode import DegradedMode

__all__ = ["CachedStore", "GuardedStore"]


class GuardedStore:
    """``store`` with every coroutine method run through the mode's pipeline (fail fast
    behind the breaker, ``state-unavailable`` when Redis is down); no local fallback.
    The pipeline is looked up at each call: it is attached after the stores are built."""

    def __init__(self, store: object, mode: DegradedMode, name: str) -> None:
        self._store = store
        self._mode = mode
        self._name = name
        self._wrapped: dict[str, Any] = {}

    def __getattr__(self, attr: str) -> Any:
        wrapped = self._wrapped.get(attr)
        if wrapped is not None:
            return wrapped
        value = getattr(self._store, attr)
        if not inspect.iscoroutinefunction(value):
            return value
        mode, operation = self._mode, f"{self._name}.{attr}"

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await mode.guarded(lambda: value(*args, **kwargs), operation)

        self._wrapped[attr] = call
        return call


class CachedStore[R: BaseModel]:
    """A small registry (agents, tenants): reads fall back to the last records seen here
    while Redis is unavailable; writes need Redis (``state-unavailable`` otherwise)."""

    def __init__(self, inner: Any, mode: DegradedMode, name: str, key: Callable[[R], str]) -> None:
        self._inner = inner
        self._mode = mode
        self._name = name
        self._key = key
        #: The last answer for each key (``None``: known not to exist).
        self._seen: dict[str, R | None] = {}

    async def put(self, record: R) -> None:
        await self._mode.guarded(lambda: self._inner.put(record), f"{self._name}.put")
        self._seen[self._key(record)] = record

    async def get(self, key: str) -> R | None:
        try:
            record: R | None = await self._mode.remote(lambda: self._inner.get(key))
        except Exception as exc:
            self._mode.fall_back(exc, f"{self._name}.get")
            if key in self._seen:
                seen = self._seen[key]
                return seen.model_copy(deep=True) if seen is not None else None
            raise self._mode.refuse(f"{self._name}.get") from exc
        self._seen[key] = record
        return record

    async def list(self) -> list[R]:
        try:
            records: list[R] = await self._mode.remote(self._inner.list)
        except Exception as exc:
            self._mode.fall_back(exc, f"{self._name}.list")
            return [r.model_copy(deep=True) for _, r in sorted(self._seen.items()) if r]
        self._seen = {self._key(r): r for r in records}
        return records

    async def delete(self, key: str) -> bool:
        deleted: bool = await self._mode.guarded(
            lambda: self._inner.delete(key), f"{self._name}.delete"
        )
        self._seen[key] = None
        return deleted
