"""Health-based routing over the endpoints of one dependency (a model served by several
OpenAI-/Anthropic-compatible servers, an MCP server reachable through a load balancer and
directly at its replicas).

* **Ejection is the endpoint's circuit breaker.** Each endpoint gets its own breaker from
  the :class:`~agentfleet_runtime.resilience.registry.ResilienceRegistry`, named
  ``<dependency>@<host[:port]/path>`` (``llm:openai/gpt-4.1@vllm-0:8000/v1``,
  ``mcp:search@10.0.0.7:8080/mcp``), configured like the dependency's own breaker. An
  endpoint is ejected exactly while its breaker refuses calls; when the recovery timeout
  has passed, the half-open breaker lets a trial call through and a success re-admits it.
  There is no second notion of health: the admin API, the breaker metrics and shared
  breaker state across replicas apply to endpoints as they are.
* **Selection: tiers, then weighted random.** Endpoints come in tiers, in order of
  preference (an MCP server: its ``url`` first, its direct ``endpoints`` second; a model: one
  tier). The first tier with an admissible endpoint gets the call; within it an endpoint
  is drawn with probability proportional to ``(1 - error_rate)**2 / (latency * (1 +
  in_flight))``, floored at ``min_share`` of the best weight. Weighted random rather than
  power-of-two-choices on a score: with two endpoints P2C always picks the better one, so
  a once-slow endpoint would never be measured again; the floor keeps a trickle of calls on
  every admissible endpoint, which is how a recovered one wins its share back.
* **Recent latency and error rate** are exponentially weighted moving averages per call
  (``latency_alpha``, ``error_alpha``). Latency is the call's duration on success (time
  to the first item for a stream) or on a timeout; errors are what the breaker counts as
  failures plus throttling (429: shift load away, but it does not eject). An endpoint
  never measured is assumed as fast as the best measured one (it gets tried).
* **Failover within a call**: a call that fails on one endpoint with an error another
  endpoint may not have (:func:`fails_over`) goes to the next admissible endpoint not
  tried yet; the caller gets the last error only when none is left, and a
  :class:`~agentfleet_runtime.errors.CircuitOpenError` (nothing sent) when every endpoint
  is ejected. Calls with effects fail over only on errors proving the request was not
  processed. The caller's ``tried`` set carries across its retries: a retry goes to an
  endpoint the call has not used yet, while there is one.

Where it sits: inside one attempt of the dependency's pipeline (retries, bulkhead, rate
limit and the dependency's own breaker stay per dependency, around it).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agentfleet_crds.v1alpha1.resiliencepolicy import CircuitBreakerOptions
from agentfleet_runtime.errors import (
    CircuitOpenError,
    DependencyError,
    DependencyNotFoundError,
    DependencyTimeoutError,
    DeprecatedError,
    RateLimitedError,
    RetryableDependencyError,
)
from agentfleet_runtime.observability import metrics
from agentfleet_runtime.resilience.breaker import BreakerGuard, CircuitBreaker
from agentfleet_runtime.resilience.classify import (
    breaker_outcome,
    error_class,
    proves_not_processed,
)
from agentfleet_runtime.resilience.clock import SYSTEM_CLOCK, Clock
from agentfleet_runtime.resilience.options import FeatureFlags

if TYPE_CHECKING:
    from agentfleet_runtime.resilience.registry import ResilienceRegistry

__all__ = ["Endpoint", "EndpointSet", "RoutingOptions", "endpoint_key", "fails_over"]

#: A call cancelled this close to its deadline (seconds) was cut by the deadline: the
#: endpoint is charged a timeout (the attempt's time limiter sits outside the balancer).
_DEADLINE_SLACK = 0.01
#: The key of the provider's default URL (a model spec without ``baseUrl``).
DEFAULT_KEY = "default"


@dataclass(frozen=True, slots=True)
class RoutingOptions:
    """How endpoints are weighted (module doc)."""

    #: Weight of the newest call in the latency average (0 < alpha <= 1).
    latency_alpha: float = 0.3
    #: Weight of the newest call in the error-rate average.
    error_alpha: float = 0.2
    #: Every admissible endpoint gets at least this share of the best endpoint's weight.
    min_share: float = 0.05


def endpoint_key(url: str | None) -> str:
    """``host[:port]/path`` of ``url`` (no scheme, no trailing slash): the endpoint's
    name in breaker names and metric labels; ``default`` for the provider's default URL."""
    if url is None:
        return DEFAULT_KEY
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL: its text names it (the call will fail with a clear error)
        return url
    return (parts.netloc + parts.path).rstrip("/") or url


def fails_over(exc: BaseException, *, idempotent: bool = True) -> bool:
    """Whether a call that failed with ``exc`` on one endpoint may be sent to another:
    availability errors another endpoint may not share (unreachable, timed out,
    overloaded, 5xx, throttled, the model or service not found or deprecated *there*).
    Not auth errors or rejected requests (every endpoint would say the same), and for a
    call with effects only errors proving it was not processed."""
    if not idempotent:
        return proves_not_processed(exc)
    return isinstance(exc, RetryableDependencyError | DependencyNotFoundError | DeprecatedError)


class Endpoint:
    """One endpoint: its URL, tier, breaker and recent statistics."""

    __slots__ = (
        "_ejected",
        "_labels",
        "breaker",
        "dependency",
        "error_rate",
        "in_flight",
        "key",
        "latency",
        "selected",
        "tier",
        "url",
    )

    def __init__(
        self, dependency: str, url: str | None, tier: int, breaker: CircuitBreaker
    ) -> None:
        self.dependency = dependency
        self.url = url
        self.key = endpoint_key(url)
        self.tier = tier
        self.breaker = breaker
        #: Seconds, EWMA; ``None`` until a call was measured.
        self.latency: float | None = None
        #: Failures among recent calls, EWMA in [0, 1].
        self.error_rate = 0.0
        self.in_flight = 0
        self.selected = 0
        self._ejected: bool | None = None
        self._labels = (dependency, self.key)

    def weight(self, default_latency: float) -> float:
        latency = max(self.latency if self.latency is not None else default_latency, 1e-4)
        return (1.0 - self.error_rate) ** 2 / (latency * (1 + self.in_flight))

    def ejected(self, breakers: bool) -> bool:
        """Whether its breaker refuses calls now (and the gauge says so)."""
        ejected = breakers and self.breaker.refusing
        if ejected != self._ejected:
            self._ejected = ejected
            metrics.ENDPOINT_EJECTED.labels(*self._labels).set(1 if ejected else 0)
        return ejected

    def snapshot(self, breakers: bool = True) -> dict[str, Any]:
        return {
            "endpoint": self.key,
            "tier": self.tier,
            "breaker": self.breaker.name,
            "state": self.breaker.state,
            "ejected": self.ejected(breakers),
            "latency_ms": None if self.latency is None else round(self.latency * 1000, 3),
            "error_rate": round(self.error_rate, 4),
            "in_flight": self.in_flight,
            "selected": self.selected,
        }


class _Call:
    """One endpoint call in progress: its guard, start time and deadline."""

    __slots__ = ("endpoint", "guard", "started", "started_loop", "timeout")

    def __init__(self, endpoint: Endpoint, guard: BreakerGuard | None, clock: Clock) -> None:
        self.endpoint = endpoint
        self.guard = guard
        self.started = clock.now()
        self.started_loop = asyncio.get_running_loop().time()
        self.timeout: float | None = None


class EndpointSet:
    """The endpoints of one dependency, and the routing of its calls (module doc)."""

    def __init__(
        self,
        dependency: str,
        tiers: Sequence[Sequence[str | None]],
        *,
        breaker: Callable[[str], CircuitBreaker],
        flags: FeatureFlags | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rand: Callable[[], float] = random.random,
        options: RoutingOptions | None = None,
    ) -> None:
        """``tiers``: URLs in order of preference (``None``: the provider's default URL);
        a URL listed twice is kept once. ``breaker(name)`` gives the breaker named
        ``<dependency>@<endpoint>``."""
        self.dependency = dependency
        self.options = options or RoutingOptions()
        self._flags = flags or FeatureFlags()
        self._clock = clock
        self._rand = rand
        seen: set[str] = set()
        self.tiers: list[list[Endpoint]] = []
        for number, urls in enumerate(tiers):
            tier: list[Endpoint] = []
            for url in urls:
                key = endpoint_key(url)
                if key in seen:
                    continue
                seen.add(key)
                tier.append(Endpoint(dependency, url, number, breaker(f"{dependency}@{key}")))
            if tier:
                self.tiers.append(tier)
        if not self.tiers:
            raise ValueError(f"{dependency}: an endpoint set needs at least one endpoint")
        self.endpoints = [endpoint for tier in self.tiers for endpoint in tier]

    @classmethod
    def from_registry(
        cls,
        registry: ResilienceRegistry,
        dependency: str,
        tiers: Sequence[Sequence[str | None]],
        options: CircuitBreakerOptions,
        *,
        rand: Callable[[], float] = random.random,
        routing: RoutingOptions | None = None,
    ) -> EndpointSet:
        """Endpoints whose breakers come from ``registry``, configured with ``options``
        (the dependency's own breaker options)."""
        endpoints = cls(
            dependency,
            tiers,
            breaker=registry.breaker,
            flags=registry.flags,
            clock=registry.clock,
            rand=rand,
            options=routing,
        )
        endpoints.configure(options)
        return endpoints

    def configure(self, options: CircuitBreakerOptions) -> None:
        """Apply the dependency's (reloaded) breaker options to every endpoint's breaker."""
        for endpoint in self.endpoints:
            endpoint.breaker.configure(options)

    def __len__(self) -> int:
        return len(self.endpoints)

    def get(self, key: str) -> Endpoint:
        for endpoint in self.endpoints:
            if endpoint.key == key:
                return endpoint
        raise KeyError(key)

    # -- selection -----------------------------------------------------------------------

    def admissible(self) -> list[Endpoint]:
        """The endpoints whose breakers let calls through now."""
        breakers = self._flags.circuit_breaker
        return [e for e in self.endpoints if not e.ejected(breakers)]

    def pick(self, exclude: frozenset[str] | set[str] = frozenset()) -> Endpoint | None:
        """The endpoint for the next call: in the first tier with an admissible endpoint
        not in ``exclude``, drawn by weight; ``None`` when there is none."""
        breakers = self._flags.circuit_breaker
        for tier in self.tiers:
            candidates = [e for e in tier if e.key not in exclude and not e.ejected(breakers)]
            if candidates:
                return self._draw(candidates)
        return None

    def _draw(self, candidates: list[Endpoint]) -> Endpoint:
        if len(candidates) == 1:
            return candidates[0]
        measured = [e.latency for e in candidates if e.latency is not None]
        default = min(measured) if measured else 1.0
        weights = [e.weight(default) for e in candidates]
        floor = max(weights) * self.options.min_share
        weights = [max(w, floor) for w in weights]
        point = self._rand() * sum(weights)
        for endpoint, weight in zip(candidates, weights, strict=True):
            point -= weight
            if point < 0:
                return endpoint
        return candidates[-1]

    def _admit(self, tried: set[str]) -> _Call | None:
        """Pick an endpoint not in ``tried`` and enter its breaker guard (an endpoint whose
        half-open breaker has no trial slot left is passed over)."""
        passed: set[str] = set()
        while True:
            endpoint = self.pick(tried | passed)
            if endpoint is None:
                return None
            guard: BreakerGuard | None = None
            if self._flags.circuit_breaker:
                guard = BreakerGuard(endpoint.breaker)
                try:
                    guard.__enter__()
                except CircuitOpenError:
                    passed.add(endpoint.key)
                    continue
            tried.add(endpoint.key)
            endpoint.selected += 1
            endpoint.in_flight += 1
            metrics.ENDPOINT_SELECTED.labels(self.dependency, endpoint.key).inc()
            return _Call(endpoint, guard, self._clock)

    def _all_ejected(self) -> CircuitOpenError:
        waits = [e.breaker.retry_after() for e in self.endpoints]
        wait = min(waits) if waits else 0.0
        return CircuitOpenError(
            f"every endpoint of {self.dependency} is ejected (circuit breakers open): "
            "calls are not made" + (f" (next trial in {wait:.1f}s)" if wait else ""),
            dependency=self.dependency,
            retry_after=wait or None,
        )

    def _start(self, tried: set[str]) -> None:
        """A new call (or a retry): forget what was tried once nothing admissible is left."""
        if tried and all(e.key in tried for e in self.admissible()):
            tried.clear()

    # -- outcomes ------------------------------------------------------------------------

    def _succeeded(self, call: _Call) -> None:
        endpoint = call.endpoint
        endpoint.in_flight -= 1
        elapsed = self._clock.now() - call.started
        self._measure(endpoint, elapsed, error=False)
        if call.guard is not None:
            call.guard.__exit__(None, None, None)

    def _failed(self, call: _Call, exc: BaseException) -> None:
        endpoint = call.endpoint
        endpoint.in_flight -= 1
        elapsed = self._clock.now() - call.started
        counted: BaseException = exc
        if (
            not isinstance(exc, Exception)
            and call.timeout is not None
            and asyncio.get_running_loop().time() - call.started_loop
            >= call.timeout - _DEADLINE_SLACK
        ):
            # Cancelled by the attempt's deadline: a timeout of this endpoint.
            counted = DependencyTimeoutError(
                f"{endpoint.key} did not answer within {call.timeout:g}s",
                dependency=self.dependency,
            )
        outcome = breaker_outcome(counted)
        if outcome == "success":  # it answered (and said no to our request)
            self._measure(endpoint, elapsed, error=False)
        elif outcome == "failure" or isinstance(counted, RateLimitedError):
            self._measure(
                endpoint, elapsed if isinstance(counted, DependencyTimeoutError) else None, True
            )
            metrics.ENDPOINT_ERRORS.labels(
                self.dependency, endpoint.key, error_class(counted)
            ).inc()
        if call.guard is not None:
            call.guard.__exit__(type(counted), counted, counted.__traceback__)

    def _measure(self, endpoint: Endpoint, latency: float | None, error: bool) -> None:
        options = self.options
        if latency is not None:
            metrics.ENDPOINT_SECONDS.labels(self.dependency, endpoint.key).observe(latency)
            previous = endpoint.latency
            endpoint.latency = (
                latency
                if previous is None
                else previous + options.latency_alpha * (latency - previous)
            )
        endpoint.error_rate += options.error_alpha * ((1.0 if error else 0.0) - endpoint.error_rate)

    def _failing_over(self, exc: BaseException) -> None:
        metrics.ENDPOINT_FAILOVERS.labels(self.dependency, error_class(exc)).inc()

    # -- calls ---------------------------------------------------------------------------

    async def call[T](
        self,
        fn: Callable[[Endpoint], Awaitable[T]],
        *,
        tried: set[str] | None = None,
        failover: Callable[[BaseException], bool] = fails_over,
        deadline: float | None = None,
    ) -> T:
        """Run ``fn`` on a chosen endpoint, failing over to the next while ``failover``
        says the error may not be the other endpoints' (module doc). ``tried``: the
        endpoints this call used in earlier attempts (updated); ``deadline``: the attempt's
        time limit in seconds, so that a call it cuts is charged to the endpoint as a timeout."""
        tried = set() if tried is None else tried
        self._start(tried)
        last: BaseException | None = None
        while True:
            call = self._admit(tried)
            if call is None:
                raise last if last is not None else self._all_ejected()
            call.timeout = deadline
            try:
                result = await fn(call.endpoint)
            except BaseException as exc:
                self._failed(call, exc)
                if isinstance(exc, Exception) and failover(exc):
                    last = exc
                    self._failing_over(exc)
                    continue
                raise
            self._succeeded(call)
            return result

    async def stream[T](
        self,
        open_stream: Callable[[Endpoint], AsyncIterator[T]],
        *,
        tried: set[str] | None = None,
        failover: Callable[[BaseException], bool] = fails_over,
        deadline: float | None = None,
    ) -> AsyncIterator[T]:
        """A streaming :meth:`call`: fails over only until the first item; the endpoint's
        guard is held until the stream ends (a break after the start is its failure)."""
        tried = set() if tried is None else tried
        self._start(tried)
        last: BaseException | None = None
        while True:
            call = self._admit(tried)
            if call is None:
                raise last if last is not None else self._all_ejected()
            call.timeout = deadline
            stream = open_stream(call.endpoint)
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                self._succeeded(call)
                return
            except BaseException as exc:
                await _close(stream)
                self._failed(call, exc)
                if isinstance(exc, Exception) and failover(exc):
                    last = exc
                    self._failing_over(exc)
                    continue
                raise
            break
        # Started: the latency is the time to the first item; what follows is not failed over.
        endpoint = call.endpoint
        self._measure(endpoint, self._clock.now() - call.started, error=False)
        call.started = self._clock.now()
        call.timeout = None
        try:
            yield first
            async for item in stream:
                yield item
        except BaseException as exc:
            await _close(stream)
            endpoint.in_flight -= 1
            if isinstance(exc, DependencyError):
                self._measure(endpoint, None, error=True)
                kind = error_class(exc)
                metrics.ENDPOINT_ERRORS.labels(self.dependency, endpoint.key, kind).inc()
            if call.guard is not None:
                call.guard.__exit__(type(exc), exc, exc.__traceback__)
            raise
        endpoint.in_flight -= 1
        if call.guard is not None:
            call.guard.__exit__(None, None, None)

    def snapshot(self) -> list[dict[str, Any]]:
        breakers = self._flags.circuit_breaker
        return [endpoint.snapshot(breakers) for endpoint in self.endpoints]


async def _close(stream: AsyncIterator[Any]) -> None:
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):  # a failed stream: its error is already known
            await closer()
