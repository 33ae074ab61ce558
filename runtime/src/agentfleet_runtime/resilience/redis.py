"""Redis behind the resilience layer: a wrapper the state backend and other Redis users
apply to their calls, and the error translation they share.

* :func:`redis_pipeline` — the ``redis`` dependency's pipeline (``database`` category:
  breaker, retries with backoff, deadline per attempt, bulkhead).
* :func:`translate` — redis-py exceptions → :mod:`agentfleet_runtime.errors`
  (timeouts and connection errors are retryable; a full connection pool is a
  :class:`~agentfleet_runtime.errors.BulkheadFullError`-like overload).
* :func:`guarded` (decorator) and :class:`GuardedProxy` (every coroutine method of an
  object, e.g. a state store) run calls through a pipeline.
* :func:`connect` — a client *without* redis-py's own retries, for code whose retries the
  pipeline owns (retries in two layers multiply). A failed command drops its connection;
  the retry takes a fresh one from the pool ("retry with a fresh connection").

What to do while Redis is down is each user's decision: the dead-letter store keeps
letters in memory and writes them back when Redis answers again; circuit breakers and
rate limiters fall back to their local state.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec
from agentfleet_runtime.errors import (
    DependencyConnectionError,
    DependencyError,
    DependencyTimeoutError,
    OverloadedError,
    UpstreamServerError,
)
from agentfleet_runtime.resilience.pipeline import Attempt, Pipeline
from agentfleet_runtime.resilience.registry import ResilienceRegistry

__all__ = ["GuardedProxy", "connect", "guarded", "redis_pipeline", "translate"]

P = ParamSpec("P")
R = TypeVar("R")

DEPENDENCY = "redis"


def redis_pipeline(
    registry: ResilienceRegistry, policy: ResiliencePolicySpec | None = None
) -> Pipeline:
    return registry.pipeline(DEPENDENCY, "database", policy)


def translate(exc: BaseException, *, dependency: str = DEPENDENCY) -> BaseException:
    """The runtime's error for a redis-py exception (others are returned unchanged)."""
    if isinstance(exc, DependencyError) or not isinstance(exc, RedisError):
        return exc
    if isinstance(exc, MaxConnectionsError):
        return OverloadedError(f"{dependency}: connection pool exhausted", dependency=dependency)
    if isinstance(exc, RedisTimeoutError):
        return DependencyTimeoutError(f"{dependency}: {exc}", dependency=dependency)
    if isinstance(exc, RedisConnectionError):
        return DependencyConnectionError(f"{dependency}: {exc}", dependency=dependency)
    return UpstreamServerError(f"{dependency}: {type(exc).__name__}: {exc}", dependency=dependency)


async def run[T](pipeline: Pipeline, call: Callable[[], Awaitable[T]]) -> T:
    """``call`` through ``pipeline``, with redis-py errors translated."""

    async def attempt(_attempt: Attempt) -> T:
        try:
            return await call()
        except RedisError as exc:
            raise translate(exc, dependency=pipeline.name) from exc

    return await pipeline.execute(attempt)


def guarded(
    pipeline: Pipeline,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate an async function so that each call goes through ``pipeline``."""

    def decorate(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return await run(pipeline, lambda: fn(*args, **kwargs))

        return wrapper

    return decorate


class GuardedProxy:
    """``obj`` with every coroutine method called through ``pipeline`` (other attributes
    pass through), e.g. ``GuardedProxy(state.sessions, redis_pipeline(registry))``."""

    def __init__(self, obj: object, pipeline: Pipeline) -> None:
        self._obj = obj
        self._pipeline = pipeline
        self._wrapped: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        wrapped = self._wrapped.get(name)
        if wrapped is not None:
            return wrapped
        value = getattr(self._obj, name)
        import inspect

        if inspect.iscoroutinefunction(value):
            wrapped = guarded(self._pipeline)(value)
            self._wrapped[name] = wrapped
            return wrapped
        return value


def connect(
    url: str,
    *,
    socket_timeout: float = 2.0,
    connect_timeout: float = 1.0,
    max_connections: int = 16,
) -> aioredis.Redis:
    """A client for code whose retries the resilience pipeline owns (no driver retries)."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry_on_error=[],
        retry=Retry(NoBackoff(), 0),
        max_connections=max_connections,
        decode_responses=False,
    )
