"""The agent as a LangGraph graph: ``model → tools → model …`` until the model answers
without asking for tools, or the step limit is reached.

One compiled graph serves every agent of the runtime: what differs between agents (model
provider, tools, instructions, limits) comes in the per-turn :class:`TurnContext`, and each
session is a LangGraph thread whose state the checkpointer keeps.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from agentfleet_runtime.agent.events import Emit, EventType
from agentfleet_runtime.errors import StepLimitExceededError
from agentfleet_runtime.messages import Message, ToolCall, tool_message
from agentfleet_runtime.observability import metrics
from agentfleet_runtime.providers.base import (
    ModelProvider,
    ModelRequest,
    ModelResponse,
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


@dataclass
class TurnUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0

    def add(self, response: ModelResponse) -> None:
        self.input_tokens += response.usage.input_tokens
        self.output_tokens += response.usage.output_tokens
        self.model_calls += 1


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

    async def report(self, event: EventType, data: dict[str, Any]) -> None:
        if self.emit is not None:
            await self.emit(event, data)


async def call_model(state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
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
    started = time.perf_counter()
    outcome = "error"
    try:
        response = await _ask(ctx, request)
        outcome = "ok"
    finally:
        metrics.MODEL_CALL_SECONDS.labels(ctx.provider.name, ctx.model, outcome).observe(
            time.perf_counter() - started
        )
    ctx.usage.add(response)
    metrics.MODEL_TOKENS.labels(ctx.provider.name, ctx.model, "input").inc(
        response.usage.input_tokens
    )
    metrics.MODEL_TOKENS.labels(ctx.provider.name, ctx.model, "output").inc(
        response.usage.output_tokens
    )
    await ctx.report(EventType.MODEL_MESSAGE, {"message": response.message})
    ctx.produced.append(response.message)
    return {"messages": [response.message], "steps": state["steps"] + 1}


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


async def run_tools(state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
    ctx = runtime.context
    calls = state["messages"][-1].get("tool_calls", [])

    async def run(call: ToolCall) -> Message:
        await ctx.report(EventType.TOOL_CALL, dict(call))
        started = time.perf_counter()
        result = await ctx.tools.call(call["name"], call["arguments"])
        metrics.TOOL_CALL_SECONDS.labels(
            call["name"], "error" if result.is_error else "ok"
        ).observe(time.perf_counter() - started)
        await ctx.report(
            EventType.TOOL_RESULT,
            {
                "id": call["id"],
                "name": call["name"],
                "content": result.content,
                "is_error": result.is_error,
            },
        )
        return tool_message(call, result.content, is_error=result.is_error)

    results = list(await asyncio.gather(*(run(call) for call in calls)))
    ctx.produced.extend(results)
    return {"messages": results}


def next_after_model(state: AgentState) -> str:
    return "tools" if state["messages"][-1].get("tool_calls") else END


def build_agent_graph(
    checkpointer: BaseCheckpointSaver[Any],
) -> CompiledStateGraph[AgentState, TurnContext, AgentState, AgentState]:
    """The graph every agent runs; sessions are threads of ``checkpointer``."""
    graph = StateGraph(AgentState, context_schema=TurnContext)
    graph.add_node("model", call_model)
    graph.add_node("tools", run_tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", next_after_model, ["tools", END])
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=checkpointer, name="agentfleet-agent")
