"""The runtime's use cases as plain typed methods (the FastAPI routes and the WebSocket
handler are thin glue over this): manage agents and sessions, run turns, stream events."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Durability
from pydantic import BaseModel

from agentfleet_crds.contract import AgentConfig, ResolvedMCPServer
from agentfleet_crds.v1alpha1 import AgentSpec, ResiliencePolicySpec
from agentfleet_runtime.agent.events import Emit, EventType, TurnEvent
from agentfleet_runtime.agent.graph import AgentState, TurnContext, build_agent_graph
from agentfleet_runtime.errors import (
    AgentfleetError,
    ConflictError,
    NotFoundError,
    ReadOnlyError,
)
from agentfleet_runtime.loader import resolve_agent
from agentfleet_runtime.messages import Message, user_message
from agentfleet_runtime.observability import metrics
from agentfleet_runtime.providers.base import ModelProvider
from agentfleet_runtime.providers.factory import ProviderPool
from agentfleet_runtime.state.base import (
    AgentRecord,
    AgentSource,
    AgentStore,
    EventLog,
    SessionRecord,
    SessionStatus,
    SessionStore,
    utcnow,
)
from agentfleet_runtime.tools.registry import ToolRegistry, create_tool_server

log = logging.getLogger(__name__)

TERMINAL_EVENTS = frozenset({EventType.TURN_COMPLETED.value, EventType.TURN_FAILED.value})


class ToolCallRecord(TypedDict):
    id: str
    name: str
    arguments: dict[str, Any]
    result: str
    is_error: bool


class TokenUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class TurnResult(BaseModel):
    """What one turn produced: the final answer and the tools that ran on the way."""

    turn_id: str
    session_id: str
    agent: str
    answer: Message
    tool_calls: list[ToolCallRecord]
    steps: int
    usage: TokenUsage
    duration_ms: float


@dataclass
class LoadedAgent:
    """An agent ready to run turns: its config, model provider and connected tools."""

    config: AgentConfig
    source: AgentSource
    provider: ModelProvider
    tools: ToolRegistry

    @property
    def name(self) -> str:
        return self.config.name


def tool_call_records(messages: list[Message]) -> list[ToolCallRecord]:
    """Pair each tool call the model made with its result."""
    results = {m.get("tool_call_id"): m for m in messages if m["role"] == "tool"}
    records: list[ToolCallRecord] = []
    for message in messages:
        for call in message.get("tool_calls", []):
            result = results.get(call["id"])
            records.append(
                {
                    "id": call["id"],
                    "name": call["name"],
                    "arguments": call["arguments"],
                    "result": result["content"] if result else "",
                    "is_error": bool(result.get("is_error")) if result else True,
                }
            )
    return records


class AgentService:
    def __init__(
        self,
        *,
        agents: AgentStore,
        sessions: SessionStore,
        events: EventLog,
        checkpointer: BaseCheckpointSaver[Any],
        providers: ProviderPool,
        stream_tokens: bool = True,
        read_only: bool = False,
        durability: Durability = "exit",
    ) -> None:
        """``read_only``: agents come only from the runtime config (cluster mode)."""
        self._agents = agents
        self._sessions = sessions
        self._events = events
        self._checkpointer = checkpointer
        self._providers = providers
        self._stream_tokens = stream_tokens
        self._read_only = read_only
        #: When LangGraph checkpoints a turn: "exit" (once, at its end: cheapest; a turn
        #: interrupted by a crash is re-run or dead-lettered, never half-applied),
        #: "async"/"sync" (after every step).
        self._durability: Durability = durability
        self._graph = build_agent_graph(checkpointer)
        self._loaded: dict[str, LoadedAgent] = {}
        #: MCP servers and resilience policies agents created through the API may use.
        self.mcp_servers: dict[str, ResolvedMCPServer] = {}
        self.policies: dict[str, ResiliencePolicySpec] = {}
        self._session_locks: dict[str, asyncio.Lock] = {}
        self._running: set[asyncio.Task[TurnResult]] = set()

    # -- agents ---------------------------------------------------------------------------

    async def load_agent(self, config: AgentConfig, source: AgentSource) -> LoadedAgent:
        """Connect an agent's provider and tools and make it available. Tool servers that
        fail to connect are recorded as unavailable; the agent still starts."""
        provider = self._providers.get(config.spec.model)
        tools = ToolRegistry([create_tool_server(server) for server in config.mcp_servers])
        await tools.start_all()
        loaded = LoadedAgent(config=config, source=source, provider=provider, tools=tools)
        previous = self._loaded.get(config.name)
        self._loaded[config.name] = loaded
        await self._agents.put(
            AgentRecord(
                name=config.name, namespace=config.namespace, spec=config.spec, source=source
            )
        )
        if previous is not None:
            await previous.tools.aclose()
        metrics.AGENTS_LOADED.set(len(self._loaded))
        log.info(
            "agent loaded",
            extra={"agent": config.name, "provider": provider.name, "tools": len(tools.tools())},
        )
        return loaded

    def resolve_agent(self, name: str, spec: AgentSpec) -> AgentConfig:
        """An API-created agent's config: tool refs resolved against known MCP servers."""
        return resolve_agent(name, spec, self.mcp_servers, self.policies)

    async def create_agent(self, config: AgentConfig) -> AgentRecord:
        if self._read_only:
            raise ReadOnlyError(
                "this runtime runs in cluster mode: agents are defined by Agent manifests "
                "(kubectl apply), not through the API"
            )
        if config.name in self._loaded:
            raise ConflictError(f"agent {config.name!r} already exists", agent=config.name)
        await self.load_agent(config, AgentSource.API)
        return await self.get_agent(config.name)

    async def get_agent(self, name: str) -> AgentRecord:
        record = await self._agents.get(name)
        if record is None:
            raise NotFoundError(f"agent {name!r} does not exist", agent=name)
        return record

    async def list_agents(self) -> list[AgentRecord]:
        return await self._agents.list()

    def loaded_agent(self, name: str) -> LoadedAgent:
        loaded = self._loaded.get(name)
        if loaded is None:
            raise NotFoundError(f"agent {name!r} does not exist", agent=name)
        return loaded

    async def delete_agent(self, name: str) -> None:
        loaded = self.loaded_agent(name)
        if loaded.source is AgentSource.CONFIG:
            raise ReadOnlyError(
                f"agent {name!r} comes from the runtime config (an Agent manifest); "
                "change or delete the manifest instead",
                agent=name,
            )
        del self._loaded[name]
        await self._agents.delete(name)
        await loaded.tools.aclose()
        metrics.AGENTS_LOADED.set(len(self._loaded))

    # -- sessions -------------------------------------------------------------------------

    async def create_session(
        self, agent: str, *, title: str | None = None, metadata: dict[str, str] | None = None
    ) -> SessionRecord:
        self.loaded_agent(agent)
        record = SessionRecord(
            id=f"ses_{uuid.uuid4().hex}", agent=agent, title=title, metadata=metadata or {}
        )
        await self._sessions.put(record)
        metrics.SESSIONS_CREATED.labels(agent=agent).inc()
        return record

    async def get_session(self, session_id: str) -> SessionRecord:
        record = await self._sessions.get(session_id)
        if record is None:
            raise NotFoundError(f"session {session_id!r} does not exist", session=session_id)
        return record

    async def list_sessions(self, *, agent: str | None = None) -> list[SessionRecord]:
        return await self._sessions.list(agent=agent)

    async def delete_session(self, session_id: str) -> None:
        await self.get_session(session_id)
        async with self._lock(session_id):
            await self._sessions.delete(session_id)
            await self._events.delete(session_id)
            await self._checkpointer.adelete_thread(session_id)
        self._session_locks.pop(session_id, None)

    async def messages(self, session_id: str) -> list[Message]:
        await self.get_session(session_id)
        return await self._thread_messages(session_id)

    async def events(self, session_id: str, *, after: int = 0) -> list[TurnEvent]:
        await self.get_session(session_id)
        return await self._events.read(session_id, after=after)

    def follow_events(self, session_id: str, *, after: int = 0) -> AsyncIterator[TurnEvent]:
        return self._events.follow(session_id, after=after)

    # -- turns ----------------------------------------------------------------------------

    async def run_turn(self, session_id: str, content: str) -> TurnResult:
        """Run one turn to its end and return the answer. The turn runs in its own task:
        a caller that goes away (client disconnect) does not cancel it. Nobody watches
        this turn token by token, so the model is not asked to stream (cheaper); its
        other events are recorded as usual."""
        task = await self.start_turn(session_id, content, stream_tokens=False)
        return await asyncio.shield(task)

    async def start_turn(
        self,
        session_id: str,
        content: str,
        *,
        turn_id: str | None = None,
        stream_tokens: bool = True,
    ) -> asyncio.Task[TurnResult]:
        """Start a turn in its own task. ``stream_tokens``: emit ``model.delta`` events
        (when the runtime's ``stream_tokens`` setting allows it)."""
        session = await self.get_session(session_id)
        agent = self.loaded_agent(session.agent)
        turn_id = turn_id or f"turn_{uuid.uuid4().hex}"
        task = asyncio.create_task(
            self._run_turn(session, agent, turn_id, content, stream_tokens),
            name=f"turn {turn_id}",
        )
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def stream_turn(self, session_id: str, content: str) -> AsyncIterator[TurnEvent]:
        """Start a turn and yield its events as they happen, ending with
        ``turn.completed`` or ``turn.failed``."""
        await self.get_session(session_id)
        turn_id = f"turn_{uuid.uuid4().hex}"
        existing = await self._events.read(session_id)
        after = existing[-1]["id"] if existing else 0
        task = await self.start_turn(session_id, content, turn_id=turn_id)
        task.add_done_callback(_consume_exception)
        async for event in self._events.follow(session_id, after=after):
            if event["turn_id"] != turn_id:
                continue
            yield event
            if event["type"] in TERMINAL_EVENTS:
                return

    async def _run_turn(
        self,
        session: SessionRecord,
        agent: LoadedAgent,
        turn_id: str,
        content: str,
        stream_tokens: bool,
    ) -> TurnResult:
        session_id = session.id

        async def emit(type_: EventType, data: dict[str, Any]) -> None:
            await self._events.append(session_id, turn_id, type_.value, data)

        async with self._lock(session_id):
            started = time.perf_counter()
            await self._set_status(session_id, SessionStatus.RUNNING)
            await emit(EventType.TURN_STARTED, {"agent": agent.name, "content": content})
            context = self._context(agent, emit, stream_tokens)
            outcome = "completed"
            try:
                state = await self._graph.ainvoke(
                    {"messages": [user_message(content)], "steps": 0},
                    {"configurable": {"thread_id": session_id}},
                    context=context,
                    durability=self._durability,
                )
            except AgentfleetError as exc:
                outcome = "failed"
                await emit(EventType.TURN_FAILED, _failure(exc))
                raise
            except Exception as exc:
                outcome = "failed"
                log.exception("turn failed", extra={"session": session_id, "turn": turn_id})
                await emit(EventType.TURN_FAILED, _failure(exc))
                raise
            finally:
                await self._set_status(session_id, SessionStatus.IDLE, turn_done=True)
                elapsed = time.perf_counter() - started
                metrics.TURNS.labels(agent=agent.name, outcome=outcome).inc()
                metrics.TURN_SECONDS.labels(agent=agent.name).observe(elapsed)
            new_messages: list[Message] = [user_message(content), *context.produced]
            result = TurnResult(
                turn_id=turn_id,
                session_id=session_id,
                agent=agent.name,
                answer=new_messages[-1],
                tool_calls=tool_call_records(new_messages),
                steps=state["steps"],
                usage=TokenUsage(
                    input_tokens=context.usage.input_tokens,
                    output_tokens=context.usage.output_tokens,
                ),
                duration_ms=round(elapsed * 1000, 3),
            )
            await emit(EventType.TURN_COMPLETED, result.model_dump(mode="json"))
            return result

    def _context(self, agent: LoadedAgent, emit: Emit, stream_tokens: bool) -> TurnContext:
        model = agent.config.spec.model
        return TurnContext(
            provider=agent.provider,
            tools=agent.tools,
            model=model.name,
            system_prompt=agent.config.spec.system_prompt,
            max_steps=agent.config.spec.max_steps,
            max_tokens=model.max_tokens,
            temperature=model.temperature,
            timeout_seconds=model.timeout_seconds,
            stream=stream_tokens and self._stream_tokens,
            emit=emit,
        )

    async def _thread_messages(self, session_id: str) -> list[Message]:
        snapshot = await self._graph.aget_state({"configurable": {"thread_id": session_id}})
        values: AgentState | dict[str, Any] = snapshot.values or {}
        return list(values.get("messages", []))

    async def _set_status(
        self, session_id: str, status: SessionStatus, *, turn_done: bool = False
    ) -> None:
        record = await self._sessions.get(session_id)
        if record is None:  # deleted meanwhile
            return
        record.status = status
        record.updated_at = utcnow()
        if turn_done:
            record.turns += 1
        await self._sessions.put(record)

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._session_locks.setdefault(session_id, asyncio.Lock())

    # -- lifecycle ------------------------------------------------------------------------

    def ready(self) -> bool:
        return bool(self._loaded)

    async def aclose(self, *, grace_seconds: float = 10.0) -> None:
        """Let running turns finish (up to ``grace_seconds``), then close tool servers."""
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=grace_seconds)
            for task in pending:
                task.cancel()
        for loaded in list(self._loaded.values()):
            await loaded.tools.aclose()
        self._loaded.clear()


def _failure(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, AgentfleetError):
        return {
            "type": exc.problem_type(),
            "title": exc.title,
            "detail": exc.detail,
            "retryable": exc.retryable,
        }
    return {
        "type": AgentfleetError.problem_type(),
        "title": AgentfleetError.title,
        "detail": "internal error while running the turn",
        "retryable": False,
    }


def _consume_exception(task: asyncio.Task[TurnResult]) -> None:
    """A streamed turn reports its failure as an event; don't log it again as unretrieved."""
    if not task.cancelled():
        task.exception()
