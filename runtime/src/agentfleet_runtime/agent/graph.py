"""The agent as a LangGraph graph: ``model → tools → model …`` until the model answers
without asking for tools, or the step limit is reached.

One compiled graph serves every agent of the runtime: what differs between agents (model
provider, tools, instructions, limits) comes in the per-turn :class:`TurnContext`, and each
session is a LangGraph thread whose state the checkpointer keeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from agentfleet_runtime.agent.events import Emit, EventType
from agentfleet_runtime.errors import (
    ModelsUnavailableError,
    StepLimitExceededError,
    StreamInterruptedError,
)
from agentfleet_runtime.messages import Message, ToolCall, tool_message
from agentfleet_runtime.observability import metrics, tracing
from agentfleet_runtime.providers.base import (
    ModelProvider,
    ModelRequest,
    ModelResponse,
    StreamItem,
    TextDelta,
    ToolSpec,
)
from agentfleet_runtime.tools.base import ToolResult


def append_messages(left: list[Message], right: list[Message]) -> list[Message]:
    """The ``messages`` reducer: a node's messages are appended to the conversation."""
    return [*left, *right]


class AgentState(TypedDict):
    """A session's state, as the checkpointer keeps it."""

    messages: Annotated[list[Message], append_messages]
    #: Model calls made in the current turn (reset to 0 by each turn's input).
    steps: int


class ToolCaller(Protocol):
    """What the tools node needs: the tools offered and a way to call one
    (:class:`agentfleet_runtime.tools.registry.ToolRegistry`)."""

    def tools(self) -> list[ToolSpec]: ...

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult: ...


class ToolResultHook(Protocol):
    """Rewrites a tool's result before the model sees it (large results go to the artifact
    store: :class:`agentfleet_runtime.artifacts.tool_results.ToolResultOffloader`)."""

    async def __call__(self, tool: str, result: ToolResult) -> ToolResult: ...


class ModelCaller(Protocol):
    """Model calls with resilience and fallbacks
    (:class:`agentfleet_runtime.resilience.llm.ModelChain`)."""

    async def complete(self, request: ModelRequest) -> ModelResponse: ...

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamItem]: ...


@dataclass
class TurnUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    #: The model that gave the last answer, as its provider names it (for the run record).
    model: str | None = None

    def add(self, response: ModelResponse) -> None:
        self.input_tokens += response.usage.input_tokens
        self.output_tokens += response.usage.output_tokens
        self.model_calls += 1
        self.model = response.model or self.model


@dataclass
class TurnContext:
    """Everything a turn needs besides the session state (LangGraph's run context)."""

    provider: ModelProvider
    tools: ToolCaller
    model: str
    system_prompt: str
    max_steps: int
    max_tokens: int = 1024
    temperature: float | None = None
    timeout_seconds: float = 60.0
    stream: bool = False
    emit: Emit | None = None
    usage: TurnUsage = field(default_factory=TurnUsage)
    #: The messages this turn's nodes added (so the caller need not re-read the thread).
    produced: list[Message] = field(default_factory=list)
    #: Model calls through the resilience layer (fallback chain); ``None``: ``provider``.
    models: ModelCaller | None = None
    agent: str = ""
    session_id: str = ""
    turn_id: str = ""
    #: Failed calls of one tool after which the turn stops calling it (``None``: no cap).
    tool_failure_cap: int | None = None
    tool_failures: dict[str, int] = field(default_factory=dict)
    #: Why the answer is degraded (no model could answer, or its stream broke).
    degraded: dict[str, Any] | None = None
    #: Applied to every tool result (``None``: results go to the model as they are).
    tool_results: ToolResultHook | None = None

    async def report(self, event: EventType, data: dict[str, Any]) -> None:
        if self.emit is not None:
            await self.emit(event, data)


async def call_model(
    state: AgentState, runtime: Runtime[TurnContext]
) -> Command[Literal["tools", "__end__"]]:
    ctx = runtime.context
    if state["steps"] >= ctx.max_steps:
        raise StepLimitExceededError(
            f"the agent made {state['steps']} model calls without a final answer "
            f"(maxSteps is {ctx.max_steps})",
            max_steps=ctx.max_steps,
        )
    request = ModelRequest(
        model=ctx.model,
        system=ctx.system_prompt,
        messages=state["messages"],
        tools=ctx.tools.tools(),
        max_tokens=ctx.max_tokens,
        temperature=ctx.temperature,
        timeout_seconds=ctx.timeout_seconds,
    )
    if ctx.models is not None:
        # The chain records call metrics, tokens and cost per model that answered. Its
        # log lines (retries, breaker transitions...) carry the turn's correlation ids,
        # bound around the whole graph by the AgentService.
        response = await _ask_models(ctx, ctx.models, request)
    else:
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await _ask(ctx, request)
            outcome = "ok"
        finally:
            metrics.MODEL_CALL_SECONDS.labels(ctx.provider.name, ctx.model, outcome).observe(
                time.perf_counter() - started
            )
        metrics.MODEL_TOKENS.labels(ctx.provider.name, ctx.model, "input").inc(
            response.usage.input_tokens
        )
        metrics.MODEL_TOKENS.labels(ctx.provider.name, ctx.model, "output").inc(
            response.usage.output_tokens
        )
    ctx.usage.add(response)
    await ctx.report(EventType.MODEL_MESSAGE, {"message": response.message})
    ctx.produced.append(response.message)
    # The node routes itself (a ``Command``) rather than through a conditional edge: one
    # task fewer per model step for LangGraph to schedule.
    return Command(
        update={"messages": [response.message], "steps": state["steps"] + 1},
        goto="tools" if response.message.get("tool_calls") else "__end__",  # END
    )


async def _ask(ctx: TurnContext, request: ModelRequest) -> ModelResponse:
    if not ctx.stream:
        return await ctx.provider.complete(request)
    final: ModelResponse | None = None
    async for item in ctx.provider.stream(request):
        if isinstance(item, TextDelta):
            await ctx.report(EventType.MODEL_DELTA, {"text": item.text})
        else:
            final = item
    if final is None:  # a provider that breaks the stream contract
        raise RuntimeError(f"provider {ctx.provider.name} ended a stream without a response")
    return final


async def _ask_models(
    ctx: TurnContext, models: ModelCaller, request: ModelRequest
) -> ModelResponse:
    """Ask the model chain; when nothing can answer, a degraded answer that says what
    failed (and the turn completes with it)."""
    partial: list[str] = []
    try:
        if not ctx.stream:
            return await models.complete(request)
        final: ModelResponse | None = None
        async for item in models.stream(request):
            if isinstance(item, TextDelta):
                partial.append(item.text)
                await ctx.report(EventType.MODEL_DELTA, {"text": item.text})
            else:
                final = item
        if final is None:
            raise RuntimeError("the model chain ended a stream without a response")
        return final
    except ModelsUnavailableError as exc:
        failed = "; ".join(f"{f['model']} ({f['reason']})" for f in exc.failures)
        text = (
            "I'm sorry, I cannot answer right now: no language model is available "
            f"({failed}). Please try again in a little while."
        )
        ctx.degraded = {"reason": "models-unavailable", "failures": exc.failures}
    except StreamInterruptedError as exc:
        text = "".join(partial) + (
            f"\n\n[The answer was cut off: the model's stream broke ({exc.detail}).]"
        )
        ctx.degraded = {"reason": "stream-interrupted", "detail": exc.detail}
    metrics.DEGRADED_ANSWERS.labels(ctx.agent, ctx.degraded["reason"]).inc()
    return ModelResponse(
        message={"role": "assistant", "content": text},
        stop_reason="degraded",
        model=request.model,
    )


def _unavailable(result: ToolResult) -> bool:
    """A failure of the tool's server (not the model's mistake, nor the tool saying no)."""
    return result.is_error and (result.structured or {}).get("error") == "unavailable"


def _capped(ctx: TurnContext, call: ToolCall) -> ToolResult | None:
    """The "do not retry" result for a tool that already failed too often in this turn."""
    cap = ctx.tool_failure_cap
    if cap is None or ctx.tool_failures.get(call["name"], 0) < cap:
        return None
    metrics.TOOL_CALLS_CAPPED.labels(call["name"]).inc()
    failures = ctx.tool_failures[call["name"]]
    return ToolResult(
        content=(
            f"Tool {call['name']} was not called: it failed {failures} times in this turn. "
            "It is unavailable; do not call it again. Answer without it."
        ),
        is_error=True,
        structured={
            "error": "unavailable",
            "tool": call["name"],
            "reason": "failed-too-often",
            "failures": failures,
            "retry": False,
        },
    )


async def run_tools(state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
    ctx = runtime.context
    calls = state["messages"][-1].get("tool_calls", [])

    async def run(call: ToolCall) -> Message:
        await ctx.report(EventType.TOOL_CALL, dict(call))
        started = time.perf_counter()
        result = _capped(ctx, call)
        if result is None:
            with tracing.span(
                f"execute_tool {call['name']}",
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": call["name"],
                    "gen_ai.tool.call.id": call["id"],
                }
                if tracing.enabled()
                else None,
            ) as span:
                result = await ctx.tools.call(call["name"], call["arguments"])
                if span is not None and result.is_error:
                    span.set_attribute("error.type", "tool_error")
            if ctx.tool_failure_cap is not None and _unavailable(result):
                ctx.tool_failures[call["name"]] = ctx.tool_failures.get(call["name"], 0) + 1
        metrics.TOOL_CALL_SECONDS.labels(
            call["name"], "error" if result.is_error else "ok"
        ).observe(time.perf_counter() - started)
        if ctx.tool_results is not None:
            result = await ctx.tool_results(call["name"], result)
        reported: dict[str, Any] = {
            "id": call["id"],
            "name": call["name"],
            "content": result.content,
            "is_error": result.is_error,
        }
        message = tool_message(call, result.content, is_error=result.is_error)
        if result.artifact is not None:
            reported["artifact"] = message["artifact"] = result.artifact
        await ctx.report(EventType.TOOL_RESULT, reported)
        return message

    results = list(await asyncio.gather(*(run(call) for call in calls)))
    ctx.produced.extend(results)
    return {"messages": results}


def build_agent_graph(
    checkpointer: BaseCheckpointSaver[Any],
) -> CompiledStateGraph[AgentState, TurnContext, AgentState, AgentState]:
    """The graph every agent runs; sessions are threads of ``checkpointer``."""
    graph = StateGraph(AgentState, context_schema=TurnContext)
    graph.add_node("model", call_model)
    graph.add_node("tools", run_tools)
    graph.add_edge(START, "model")
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=checkpointer, name="agentfleet-agent")
