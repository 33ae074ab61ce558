"""``ModelChain``: an agent's model calls through resilience pipelines, with the fallback
model chain (``spec.model`` then ``spec.fallbackModels``, in order).

* Each model is its own dependency ``llm:<provider>/<model>`` (own breaker, bulkhead, retry
  budget); the models of one provider share its rate limiter ``llm:<provider>``.
* A model with ``endpoints`` (several servers of it) has one provider per endpoint, and
  each attempt is routed by an :class:`~.balancer.EndpointSet`: a failing endpoint is
  ejected by its own breaker and the call goes to another endpoint before the model as a
  whole gives up and the next model gets it. A pinned version a server cannot serve
  (404 not found, 410, a 400 saying deprecated or e.g. "does not support tools") falls
  back with reason ``notFound``/``deprecated``/``incompatible``.
* A model whose pipeline gives up with an *availability* error (retries exhausted on
  timeouts, 5xx, overload, rate limiting; breaker open; bulkhead full; rate limit or
  retry budget exhausted; model not found, deprecated, quota exhausted) hands the call to
  the next model. An auth error or a rejected request does not: they are configuration or
  request errors a fallback would hide — the turn fails at once (and the provider's
  credentials are re-read for the next call: a rotated key is picked up).
* When no model can answer, :class:`~agentfleet_runtime.errors.ModelsUnavailableError`
  says what failed for each; the agent turns it into a degraded answer.
* Streams fall back only before their first token; a stream that broke after it started
  raises :class:`~agentfleet_runtime.errors.StreamInterruptedError` (never retried).
* Token usage and estimated cost are recorded per agent, tenant, provider and model; a
  span ``chat <model>`` (GenAI semantic conventions) covers each model's call, with a
  child span per attempt.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from opentelemetry.trace import SpanKind

from agentfleet_crds.v1alpha1.agent import ModelSpec
from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec
from agentfleet_runtime.errors import (
    CallRefusedError,
    DependencyAuthError,
    DependencyError,
    DependencyNotFoundError,
    DeprecatedError,
    InvalidRequestError,
    ModelsUnavailableError,
    QuotaExceededError,
    RetryableDependencyError,
)
from agentfleet_runtime.observability import metrics, tracing
from agentfleet_runtime.observability.costs import PriceTable
from agentfleet_runtime.providers.base import (
    ModelProvider,
    ModelRequest,
    ModelResponse,
    StreamItem,
)
from agentfleet_runtime.providers.factory import ProviderPool, ResolvedProvider, resolve
from agentfleet_runtime.resilience.balancer import EndpointSet, endpoint_key
from agentfleet_runtime.resilience.classify import error_class
from agentfleet_runtime.resilience.events import FallbackUsed
from agentfleet_runtime.resilience.pipeline import Attempt, Pipeline
from agentfleet_runtime.resilience.ratelimit import estimate_tokens
from agentfleet_runtime.resilience.registry import ResilienceRegistry

__all__ = ["ModelChain", "fallback_reason", "falls_back", "model_dependency"]

_FALLBACK_ERRORS = (
    RetryableDependencyError,
    CallRefusedError,
    DependencyNotFoundError,
    DeprecatedError,
    QuotaExceededError,
)


def falls_back(exc: BaseException) -> bool:
    """Whether the next model of the chain should get the call after ``exc``."""
    return isinstance(exc, _FALLBACK_ERRORS)


def fallback_reason(exc: BaseException) -> str:
    """The ``reason`` of a fallback: the error class, or ``incompatible`` when the pinned
    model version cannot serve the request (deprecated, or e.g. without tool support)."""
    if isinstance(exc, DependencyError) and exc.extensions.get("incompatible"):
        return "incompatible"
    return error_class(exc)


def model_dependency(spec: ModelSpec) -> str:
    return f"llm:{spec.provider.value}/{spec.name}"


class _Link:
    """One model of the chain: its spec, pipeline, endpoints (when it has several) and
    (lazily resolved) providers, one per endpoint."""

    def __init__(
        self,
        spec: ModelSpec,
        pipeline: Pipeline,
        pool: ProviderPool,
        endpoints: EndpointSet | None = None,
    ) -> None:
        self.spec = spec
        self.pipeline = pipeline
        self.dependency = pipeline.name
        self.label = f"{spec.provider.value}/{spec.name}"
        self.endpoints = endpoints
        self._pool = pool
        self._providers: dict[str, ModelProvider] | None = None
        self._resolved: list[ResolvedProvider] = []

    def providers(self) -> dict[str, ModelProvider]:
        """The provider of each endpoint, by endpoint key (resolved on first use: a
        missing key is an :class:`InvalidRequestError` before anything is sent)."""
        if self._providers is None:
            urls = (
                [self.spec.base_url]
                if self.endpoints is None
                else [e.url for e in self.endpoints.endpoints]
            )
            providers: dict[str, ModelProvider] = {}
            resolved: list[ResolvedProvider] = []
            for url in urls:
                spec = self.spec.model_copy(update={"base_url": url, "endpoints": []})
                resolved.append(resolve(spec, self._pool.settings))
                providers[endpoint_key(url)] = self._pool.get(spec)
            self._providers, self._resolved = providers, resolved
        return self._providers

    def refresh_credentials(self) -> None:
        """Forget the providers built with the key that was refused: the next call
        resolves the key again (a rotated Secret, the secret manager)."""
        stale = self._resolved
        if stale:
            self._pool.invalidate(lambda candidate: candidate in stale)
        self._providers = None
        self._resolved = []

    async def complete(
        self,
        providers: dict[str, ModelProvider],
        request: ModelRequest,
        attempt: Attempt,
        tried: set[str],
    ) -> ModelResponse:
        """One attempt: on the model's only endpoint, or routed over its endpoints."""
        if self.endpoints is None:
            (provider,) = providers.values()
            return await provider.complete(request)
        return await self.endpoints.call(
            lambda endpoint: providers[endpoint.key].complete(request),
            tried=tried,
            deadline=attempt.timeout,
        )

    def open_stream(
        self,
        providers: dict[str, ModelProvider],
        request: ModelRequest,
        attempt: Attempt,
        tried: set[str],
    ) -> AsyncIterator[StreamItem]:
        if self.endpoints is None:
            (provider,) = providers.values()
            return provider.stream(request)
        return self.endpoints.stream(
            lambda endpoint: providers[endpoint.key].stream(request),
            tried=tried,
            deadline=attempt.timeout,
        )

    def request(self, request: ModelRequest, attempt: Attempt) -> ModelRequest:
        spec = self.spec
        return dataclasses.replace(
            request,
            model=spec.name,
            max_tokens=spec.max_tokens,
            temperature=spec.temperature,
            timeout_seconds=attempt.timeout or spec.timeout_seconds,
        )

    def timeout(self) -> float:
        return min(self.spec.timeout_seconds, self.pipeline.timeout)

    def tokens(self, request: ModelRequest) -> int:
        limiter = self.pipeline.limiter
        if limiter is None or not limiter.options.tokens_per_minute:
            return 0
        characters = len(request.system) + sum(len(m["content"]) for m in request.messages)
        return estimate_tokens(characters)


class ModelChain:
    """An agent's models behind resilience pipelines, with fallbacks (module doc)."""

    def __init__(
        self,
        *,
        agent: str,
        tenant: str,
        models: Sequence[ModelSpec],
        providers: ProviderPool,
        registry: ResilienceRegistry,
        policy: ResiliencePolicySpec | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        if not models:
            raise ValueError("a model chain needs at least one model")
        self.agent = agent
        self.tenant = tenant
        self._registry = registry
        self._prices = prices or PriceTable()
        self._links = []
        for spec in models:
            pipeline = registry.pipeline(
                model_dependency(spec), "llm", policy, rate_limit_key=f"llm:{spec.provider.value}"
            )
            endpoints = None
            if spec.endpoints:
                endpoints = EndpointSet.from_registry(
                    registry,
                    pipeline.name,
                    [[spec.base_url, *spec.endpoints]],
                    pipeline.options.policy.circuit_breaker,
                )
            self._links.append(_Link(spec, pipeline, providers, endpoints))
        self.name = models[0].provider.value

    @property
    def models(self) -> list[str]:
        return [link.label for link in self._links]

    def _links_to_try(self) -> list[_Link]:
        return self._links if self._registry.flags.fallback else self._links[:1]

    # -- complete ------------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> ModelResponse:
        failures: list[dict[str, str]] = []
        links = self._links_to_try()
        for index, link in enumerate(links):
            started = time.perf_counter()
            with tracing.span(
                f"chat {link.spec.name}", self._span_attributes(link, False), kind=SpanKind.CLIENT
            ) as span:
                try:
                    providers = link.providers()
                    tried: set[str] = set()

                    async def call(
                        attempt: Attempt,
                        link: _Link = link,
                        providers: dict[str, ModelProvider] = providers,
                        tried: set[str] = tried,
                    ) -> ModelResponse:
                        return await link.complete(
                            providers, link.request(request, attempt), attempt, tried
                        )

                    tokens = link.tokens(request)
                    response = await link.pipeline.execute(
                        call, attempt_timeout=link.timeout(), tokens=tokens
                    )
                except Exception as exc:
                    self._observe(link, started, "error")
                    tracing.record_error(span, exc)
                    self._give_up_or_fall_back(link, exc, failures, links, index)
                    continue
                self._observe(link, started, "ok")
                self._account(link, response, tokens, span)
                return response
        raise self._unavailable(failures)

    # -- stream --------------------------------------------------------------------------

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]:
        failures: list[dict[str, str]] = []
        links = self._links_to_try()
        for index, link in enumerate(links):
            started = time.perf_counter()
            begun = False
            # Not the current span: a generator's context is its consumer's between yields.
            span = tracing.start_span(
                f"chat {link.spec.name}", self._span_attributes(link, True), kind=SpanKind.CLIENT
            )
            try:
                try:
                    providers = link.providers()
                    tried: set[str] = set()

                    def open_stream(
                        attempt: Attempt,
                        link: _Link = link,
                        providers: dict[str, ModelProvider] = providers,
                        tried: set[str] = tried,
                    ) -> AsyncIterator[StreamItem]:
                        return link.open_stream(
                            providers, link.request(request, attempt), attempt, tried
                        )

                    tokens = link.tokens(request)
                    final: ModelResponse | None = None
                    async for item in link.pipeline.stream(
                        open_stream, attempt_timeout=link.timeout(), tokens=tokens
                    ):
                        begun = True
                        if isinstance(item, ModelResponse):
                            final = item
                        yield item
                except Exception as exc:
                    self._observe(link, started, "error")
                    tracing.record_error(span, exc)
                    if begun:
                        raise
                    self._give_up_or_fall_back(link, exc, failures, links, index)
                    continue
                self._observe(link, started, "ok")
                if final is not None:
                    self._account(link, final, tokens, span)
                return
            finally:
                if span is not None:
                    span.end()
        raise self._unavailable(failures)

    # -- helpers -------------------------------------------------------------------------

    def _give_up_or_fall_back(
        self,
        link: _Link,
        exc: Exception,
        failures: list[dict[str, str]],
        links: list[_Link],
        index: int,
    ) -> None:
        """Record why ``link`` failed and return (try the next model), or raise."""
        if isinstance(exc, DependencyAuthError):
            link.refresh_credentials()
        misconfigured = isinstance(exc, InvalidRequestError) and index > 0
        if not (falls_back(exc) or misconfigured):
            raise exc
        detail = exc.detail if isinstance(exc, DependencyError | InvalidRequestError) else str(exc)
        reason = "misconfigured" if misconfigured else fallback_reason(exc)
        failures.append({"model": link.label, "reason": reason, "detail": detail})
        if index + 1 < len(links):
            self._registry.bus.publish(
                FallbackUsed(self.agent, link.label, links[index + 1].label, reason)
            )

    def _unavailable(self, failures: list[dict[str, str]]) -> ModelsUnavailableError:
        summary = "; ".join(f"{f['model']}: {f['reason']}" for f in failures)
        return ModelsUnavailableError(
            f"no model could answer ({summary})", dependency="llm", failures=failures
        )

    def _span_attributes(self, link: _Link, stream: bool) -> dict[str, Any] | None:
        if not tracing.enabled():
            return None
        spec = link.spec
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": spec.provider.value,
            "gen_ai.request.model": spec.name,
            "gen_ai.request.max_tokens": spec.max_tokens,
            "gen_ai.request.stream": stream,
            "gen_ai.agent.name": self.agent,
            "agentfleet.dependency": link.dependency,
        }
        if spec.temperature is not None:
            attributes["gen_ai.request.temperature"] = spec.temperature
        return attributes

    def _observe(self, link: _Link, started: float, outcome: str) -> None:
        metrics.MODEL_CALL_SECONDS.labels(
            link.spec.provider.value, link.spec.name, outcome
        ).observe(time.perf_counter() - started)

    def _account(
        self, link: _Link, response: ModelResponse, estimated: int, span: Any | None
    ) -> None:
        usage = response.usage
        provider, model = link.spec.provider.value, link.spec.name
        metrics.MODEL_TOKENS.labels(provider, model, "input").inc(usage.input_tokens)
        metrics.MODEL_TOKENS.labels(provider, model, "output").inc(usage.output_tokens)
        metrics.LLM_TOKENS.labels(self.agent, self.tenant, provider, model, "input").inc(
            usage.input_tokens
        )
        metrics.LLM_TOKENS.labels(self.agent, self.tenant, provider, model, "output").inc(
            usage.output_tokens
        )
        cost = self._prices.cost(model, usage.input_tokens, usage.output_tokens)
        if cost:
            metrics.LLM_COST.labels(self.agent, self.tenant, provider, model).inc(cost)
        limiter = link.pipeline.limiter
        if limiter is not None and estimated:
            limiter.record_usage(usage.input_tokens + usage.output_tokens, estimated)
        if span is not None and span.is_recording():
            span.set_attribute("gen_ai.response.model", response.model)
            span.set_attribute("gen_ai.response.finish_reasons", [response.stop_reason])
            span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
