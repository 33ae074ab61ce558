"""The runtime's use cases as plain typed methods (the FastAPI routes and the WebSocket
handler are thin glue over this): manage agents and sessions, run turns, stream events."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Durability
from pydantic import BaseModel

from agentfleet_crds.contract import AgentConfig
from agentfleet_crds.v1alpha1 import AgentSpec, ResiliencePolicySpec
from agentfleet_runtime.agent.events import Emit, EventType, TurnEvent
from agentfleet_runtime.agent.graph import AgentState, TurnContext, build_agent_graph
from agentfleet_runtime.agent.runs import RunRecorder, ToolCallRecord, tool_call_records
from agentfleet_runtime.artifacts.tool_results import ToolResultOffloader
from agentfleet_runtime.auth.base import DEFAULT_TENANT
from agentfleet_runtime.errors import (
    AgentfleetError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    ReadOnlyError,
    TurnError,
)
from agentfleet_runtime.loader import resolve_agent
from agentfleet_runtime.messages import Message, user_message
from agentfleet_runtime.observability import metrics, tracing
from agentfleet_runtime.outbound_http import HttpPool
from agentfleet_runtime.providers.base import ModelProvider
from agentfleet_runtime.providers.factory import ProviderPool
from agentfleet_runtime.scheduling import FairScheduler
from agentfleet_runtime.state.base import (
    Acceptance,
    AgentRecord,
    AgentSource,
    AgentStore,
    Claim,
    EventLog,
    LeaseLostError,
    SessionRecord,
    SessionStatus,
    SessionStore,
    agent_key,
    utcnow,
)
from agentfleet_runtime.state.dispatcher import TurnDispatcher
from agentfleet_runtime.state.runs import RunStore, TokenUsage
from agentfleet_runtime.tools.catalog import MCPServerCatalog
from agentfleet_runtime.tools.registry import ToolRegistry, create_tool_server

if TYPE_CHECKING:
    from agentfleet_runtime.agent.graph import ModelCaller
    from agentfleet_runtime.artifacts.service import ArtifactService
    from agentfleet_runtime.deadletters import DeadLetterRecorder
    from agentfleet_runtime.resilience import ResilienceRegistry
    from agentfleet_runtime.tenants import TenantQuotaGuard

log = logging.getLogger(__name__)

#: Metadata keys a session may have (``SessionCreate`` and merge patches alike).
MAX_SESSION_METADATA = 64
TERMINAL_EVENTS = frozenset({EventType.TURN_COMPLETED.value, EventType.TURN_FAILED.value})


class AgentReloadError(InvalidRequestError):
    """A new agent configuration failed its health checks; the old one keeps serving."""

    slug = "agent-reload-failed"
    title = "The new agent configuration failed its health checks"


class SessionBusyError(ConflictError):
    """The session has a turn running or queued: its history cannot change under it."""

    slug = "session-busy"
    title = "The session is running a turn"


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
    #: Set when the answer is degraded: no model could answer (``reason``
    #: ``models-unavailable``, with ``failures`` per model) or its stream broke.
    degraded: dict[str, Any] | None = None


@dataclass
class LoadedAgent:
    """An agent ready to run turns: its config, model provider and connected tools."""

    config: AgentConfig
    source: AgentSource
    provider: ModelProvider
    tools: ToolRegistry
    #: The model chain with resilience and fallbacks (``None``: ``provider`` directly).
    models: ModelCaller | None = None

    @property
    def name(self) -> str:
        return self.config.name


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
        runs: RunStore | None = None,
    ) -> None:
        """``read_only``: agents come only from the runtime config (cluster mode);
        ``runs``: where each turn's record is kept (none: not recorded)."""
        self._agents = agents
        #: Each turn's record (``/api/v1/runs``).
        self.runs = RunRecorder(runs, sessions)
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
        self.mcp_servers = MCPServerCatalog()
        self.policies: dict[str, ResiliencePolicySpec] = {}
        self._session_locks: dict[str, asyncio.Lock] = {}
        self._running: set[asyncio.Task[TurnResult]] = set()
        #: Runs turns through durable per-session inboxes and leases (set by the app):
        #: any replica may run any session's turn, and a lost replica's turn is recovered.
        self.dispatcher: TurnDispatcher | None = None
        #: Turns running in this process: their outcome, for callers waiting here.
        self._outcomes: dict[str, asyncio.Future[TurnResult]] = {}
        #: The resilience layer (set by the app): pipelines for model and tool calls.
        self.resilience: ResilienceRegistry | None = None
        #: Records permanently failed turns (set by the app).
        self.dead_letters: DeadLetterRecorder | None = None
        #: Tenant quotas (set by the app): sessions per tenant, tokens per day.
        self.quotas: TenantQuotaGuard | None = None
        #: Failed calls of one tool per turn before the model is told to stop calling it.
        self.tool_failures_per_turn: int = 2
        #: The artifact store (set by the app): large tool results are kept there.
        self.artifacts: ArtifactService | None = None
        #: Caps the turns executing on this replica, admitting waiting ones round-robin
        #: across tenants (the app sets the replica's; the default has no cap).
        self.scheduler = FairScheduler(None)
        #: How long a replaced agent version's turns may run before its tools are closed.
        self.drain_seconds: float = 30.0
        #: Seconds a tool server's list of tools is trusted before it is listed again.
        self.tool_list_ttl: float = 0.0
        #: Connection pool of each streamable-HTTP MCP client (``None``: httpx's default).
        self.mcp_http_pool: HttpPool | None = None
        #: Work that outlives its caller (retiring an agent version, pruning checkpoints);
        #: waited for on close.
        self._background: set[asyncio.Task[None]] = set()

    # -- agents ---------------------------------------------------------------------------

    async def load_agent(
        self,
        config: AgentConfig,
        source: AgentSource,
        *,
        tenant: str | None = None,
        created_at: datetime | None = None,
    ) -> LoadedAgent:
        """Connect an agent's provider and tools and make it available. Tool servers that
        fail to connect are recorded as unavailable; the agent still starts. ``tenant``:
        the owner of an API-created agent (``None``: shared, e.g. from config);
        ``created_at``: kept when an existing agent is reloaded (``None``: now)."""
        loaded = await self._build_agent(config, source)
        await self._install_agent(loaded, tenant=tenant, created_at=created_at)
        return loaded

    async def switch_agent(
        self,
        config: AgentConfig,
        source: AgentSource,
        *,
        tenant: str | None = None,
        created_at: datetime | None = None,
    ) -> LoadedAgent:
        """Hot reload of a loaded agent (a config change, ``PUT /agents/{name}``): build
        the new version next to the old one (its model provider and tool connections
        opened), health-check it, and only then swap it in; the old version's tools are
        closed once the turns running on it end.

        Checks: every tool server of the new version connected and listed its tools, and
        serves its pinned tools as pinned (``ToolRegistry.check_failures``); a server that
        failed them in the old version too is not held against the new one. A version
        that fails them is closed and :class:`AgentReloadError` raised; the old version
        keeps serving (rolled back)."""
        key = agent_key(config.name, tenant)
        current = self._loaded.get(key)
        candidate = await self._build_agent(config, source)
        already = current.tools.check_failures() if current is not None else {}
        failed = {
            server: reason
            for server, reason in candidate.tools.check_failures().items()
            if server not in already  # failing before the change too: not its fault
        }
        if failed:
            await candidate.tools.aclose()
            raise AgentReloadError(
                f"agent {config.name!r}: the new configuration failed its health checks "
                "and was rolled back; the old one keeps serving: "
                + "; ".join(f"tool server {n!r}: {r}" for n, r in sorted(failed.items())),
                agent=config.name,
                failed=failed,
            )
        if created_at is None:
            record = await self._agents.get(key)
            created_at = record.created_at if record else None
        await self._install_agent(candidate, tenant=tenant, created_at=created_at)
        log.info(
            "agent switched over",
            extra={"agent": config.name, "replaced": current is not None},
        )
        return candidate

    async def unload_agent(self, name: str) -> bool:
        """Remove a shared (config) agent from this process: it left the runtime config.
        Its running turns finish first (up to the drain grace); its sessions remain."""
        loaded = self._loaded.pop(name, None)
        if loaded is None:
            return False
        await self._agents.delete(name)
        self._retire(loaded)
        metrics.AGENTS_LOADED.set(len(self._loaded))
        log.info("agent unloaded", extra={"agent": name})
        return True

    def loaded_agents(self) -> dict[str, LoadedAgent]:
        """Every agent loaded in this process, by agent key."""
        return dict(self._loaded)

    def shared_agents(self) -> dict[str, LoadedAgent]:
        """The agents loaded from the runtime config, by name."""
        return {
            name: loaded
            for name, loaded in self._loaded.items()
            if loaded.source is AgentSource.CONFIG
        }

    async def _build_agent(self, config: AgentConfig, source: AgentSource) -> LoadedAgent:
        provider = self._providers.get(config.spec.model)
        pool = self.mcp_http_pool
        tools = ToolRegistry(
            [create_tool_server(server, http_pool=pool) for server in config.mcp_servers],
            resilience=self.resilience,
            policy=config.resilience,
            tool_list_ttl=self.tool_list_ttl,
            http_pool=pool,
        )
        await tools.start_all()
        models: ModelCaller | None = None
        if self.resilience is not None:
            from agentfleet_runtime.resilience.llm import ModelChain

            models = ModelChain(
                agent=config.name,
                tenant=config.namespace,
                models=[config.spec.model, *config.spec.fallback_models],
                providers=self._providers,
                registry=self.resilience,
                policy=config.resilience,
            )
        return LoadedAgent(
            config=config, source=source, provider=provider, tools=tools, models=models
        )

    async def _install_agent(
        self, loaded: LoadedAgent, *, tenant: str | None, created_at: datetime | None
    ) -> None:
        config = loaded.config
        key = agent_key(config.name, tenant)
        previous = self._loaded.get(key)
        self._loaded[key] = loaded
        await self._agents.put(
            AgentRecord(
                name=config.name,
                namespace=config.namespace,
                spec=config.spec,
                source=loaded.source,
                tenant=tenant,
                created_at=created_at or utcnow(),
            )
        )
        if previous is not None:
            self._retire(previous)
        metrics.AGENTS_LOADED.set(len(self._loaded))
        log.info(
            "agent loaded",
            extra={
                "agent": config.name,
                "provider": loaded.provider.name,
                "tools": len(loaded.tools.tools()),
            },
        )

    def _retire(self, loaded: LoadedAgent) -> None:
        """Close a replaced or removed agent's tool connections once the turns that were
        running when it was replaced have ended (new turns run on the new version), or
        after ``drain_seconds``."""
        running = set(self._running)

        async def drain() -> None:
            if running:
                await asyncio.wait(running, timeout=self.drain_seconds)
            await loaded.tools.aclose()

        self._in_background(drain(), f"retire {loaded.name}")

    def _in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def resolve_agent(
        self, name: str, spec: AgentSpec, *, tenant: str | None = None
    ) -> AgentConfig:
        """An API-created agent's config: tool refs resolved against known MCP servers
        (``tenant``: only the shared ones and that tenant's own)."""
        servers = self.mcp_servers if tenant is None else self.mcp_servers.visible(tenant)
        return resolve_agent(name, spec, servers, self.policies)

    def tool_registries(self) -> dict[str, ToolRegistry]:
        """The tool registry of every agent loaded in this process, by agent key (the
        name of a shared agent, ``<tenant>/<name>`` of a tenant's own: see ``agent_key``)."""
        return {name: loaded.tools for name, loaded in self._loaded.items()}

    async def create_agent(self, config: AgentConfig, *, tenant: str | None = None) -> AgentRecord:
        if self._read_only:
            raise ReadOnlyError(
                "this runtime runs in cluster mode: agents are defined by Agent manifests "
                "(kubectl apply), not through the API"
            )
        # Names are per tenant; a shared agent's name (from the runtime config) is taken
        # for every tenant. Another tenant's agent of the same name is no conflict.
        key = agent_key(config.name, tenant)
        if config.name in self._loaded or await self._agents.get(config.name) is not None:
            raise ConflictError(
                f"agent {config.name!r} already exists (a shared agent)", agent=config.name
            )
        if key in self._loaded or await self._agents.get(key) is not None:
            raise ConflictError(f"agent {config.name!r} already exists", agent=config.name)
        await self.load_agent(config, AgentSource.API, tenant=tenant)
        return await self.get_agent(config.name, tenant=tenant)

    async def _find_agent(self, name: str, tenant: str | None) -> AgentRecord | None:
        """The agent ``name`` as ``tenant`` sees it: a shared one of that name first (the
        runtime config's win), else the tenant's own; ``tenant=None``: shared ones only."""
        record = await self._agents.get(name)
        if record is None and tenant is not None:
            record = await self._agents.get(agent_key(name, tenant))
        if record is None or (tenant is not None and not record.visible_to(tenant)):
            return None
        return record

    async def get_agent(self, name: str, *, tenant: str | None = None) -> AgentRecord:
        """``tenant``: only if that tenant may see it (its own or a shared agent)."""
        record = await self._find_agent(name, tenant)
        if record is None:
            raise NotFoundError(f"agent {name!r} does not exist", agent=name)
        return record

    async def list_agents(self, *, tenant: str | None = None) -> list[AgentRecord]:
        records = await self._agents.list()
        return [r for r in records if tenant is None or r.visible_to(tenant)]

    def loaded_agent(self, name: str, *, tenant: str | None = None) -> LoadedAgent:
        """The agent ``name`` loaded in this process, as ``tenant`` sees it (a shared one
        first, else the tenant's own)."""
        loaded = self._loaded.get(name)
        if loaded is None and tenant is not None:
            loaded = self._loaded.get(agent_key(name, tenant))
        if loaded is None:
            raise NotFoundError(f"agent {name!r} does not exist", agent=name)
        return loaded

    async def agent_for(self, name: str, *, tenant: str | None = None) -> LoadedAgent:
        """The loaded agent (as ``tenant`` sees it), loading it here when another replica
        created it through the API (the registry in the state store is shared; loaded
        tools are per process)."""
        shared = self._loaded.get(name)
        if shared is not None and shared.source is AgentSource.CONFIG:
            return shared
        record = await self._find_agent(name, tenant)
        if record is None:
            for key in {name, agent_key(name, tenant)}:
                stale = self._loaded.get(key)
                if stale is not None and stale.source is AgentSource.API:
                    del self._loaded[key]  # deleted through another replica
                    await stale.tools.aclose()
            raise NotFoundError(f"agent {name!r} does not exist", agent=name)
        loaded = self._loaded.get(record.key)
        if loaded is not None and loaded.config.spec == record.spec:
            return loaded
        return await self.load_agent(
            self.resolve_agent(name, record.spec, tenant=record.tenant),
            record.source,
            tenant=record.tenant,
            created_at=record.created_at,
        )

    async def replace_agent(
        self, name: str, spec: AgentSpec, *, tenant: str | None = None
    ) -> AgentRecord:
        """Replace an API-created agent's spec. The new spec is resolved and its tools
        connected and checked before it is swapped in: a spec that does not resolve, or
        whose tool servers fail checks the current version passes (a server that does not
        connect, pinned tools it does not serve as pinned), is refused (422
        ``agent-reload-failed``) and the old agent keeps serving. Turns after this run the
        new spec; the old version's tools close once its running turns end; replicas that
        loaded the old one reload on their next turn (``agent_for``)."""
        record = await self.get_agent(name, tenant=tenant)
        self._refuse_config_agent(record)
        config = self.resolve_agent(name, spec, tenant=record.tenant)
        await self.switch_agent(
            config, AgentSource.API, tenant=record.tenant, created_at=record.created_at
        )
        return await self.get_agent(name, tenant=tenant)

    def _refuse_config_agent(self, record: AgentRecord) -> None:
        loaded = self._loaded.get(record.key)
        if record.source is AgentSource.CONFIG or (
            loaded is not None and loaded.source is AgentSource.CONFIG
        ):
            raise ReadOnlyError(
                f"agent {record.name!r} comes from the runtime config (an Agent manifest); "
                "change or delete the manifest instead",
                agent=record.name,
            )

    async def delete_agent(self, name: str, *, tenant: str | None = None) -> None:
        record = await self.get_agent(name, tenant=tenant)
        self._refuse_config_agent(record)
        loaded = self._loaded.get(record.key)
        self._loaded.pop(record.key, None)
        await self._agents.delete(record.key)
        if loaded is not None:
            await loaded.tools.aclose()
        metrics.AGENTS_LOADED.set(len(self._loaded))

    # -- sessions -------------------------------------------------------------------------

    async def create_session(
        self,
        agent: str,
        *,
        title: str | None = None,
        metadata: dict[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> SessionRecord:
        await self.get_agent(agent, tenant=tenant)
        await self.agent_for(agent, tenant=tenant)
        record = SessionRecord(
            id=f"ses_{uuid.uuid4().hex}",
            agent=agent,
            title=title,
            metadata=metadata or {},
            tenant=tenant,
        )
        if self.quotas is None:
            await self._sessions.put(record)
        else:  # counted and created under the tenant's quota lock: no overshoot

            async def count() -> int:
                return len(await self._sessions.list(tenant=tenant))

            async with self.quotas.session_slot(tenant, count):
                await self._sessions.put(record)
        metrics.SESSIONS_CREATED.labels(agent=agent).inc()
        return record

    async def get_session(self, session_id: str, *, tenant: str | None = None) -> SessionRecord:
        """``tenant``: only that tenant's session; another tenant's is "not found" (its
        existence is not revealed)."""
        record = await self._sessions.get(session_id)
        if record is None or (tenant is not None and record.tenant != tenant):
            raise NotFoundError(f"session {session_id!r} does not exist", session=session_id)
        return record

    async def list_sessions(
        self, *, agent: str | None = None, tenant: str | None = None
    ) -> list[SessionRecord]:
        return await self._sessions.list(agent=agent, tenant=tenant)

    async def update_session(
        self,
        session_id: str,
        patch: Mapping[str, Any],
        *,
        tenant: str | None = None,
        max_metadata: int = MAX_SESSION_METADATA,
    ) -> SessionRecord:
        """Apply a JSON merge patch (RFC 7396) of ``title``/``metadata``: an absent field
        stays, ``title: null`` clears the title, ``metadata: null`` clears all metadata,
        a ``null`` metadata value removes that key. Atomic read-modify-write, so two
        patches of different keys both land. A result over ``max_metadata`` keys is
        refused (422) and nothing changes."""
        await self.get_session(session_id, tenant=tenant)

        def change(record: SessionRecord) -> None:
            metadata = record.metadata
            if "metadata" in patch:
                changes: Mapping[str, str | None] | None = patch["metadata"]
                metadata = {} if changes is None else dict(record.metadata)
                for key, value in (changes or {}).items():
                    if value is None:
                        metadata.pop(key, None)
                    else:
                        metadata[key] = value
                if len(metadata) > max_metadata:  # checked before anything changes
                    raise InvalidRequestError(
                        f"a session has at most {max_metadata} metadata keys "
                        f"({len(metadata)} after this change)",
                        session=session_id,
                    )
            record.metadata = metadata
            if "title" in patch:
                record.title = patch["title"]
            record.updated_at = utcnow()

        updated = await self._sessions.update(session_id, change)
        if updated is None:  # deleted meanwhile
            raise NotFoundError(f"session {session_id!r} does not exist", session=session_id)
        return updated

    async def delete_session(self, session_id: str) -> None:
        session = await self.get_session(session_id)
        async with self._lock(session_id):
            await self._sessions.delete(session_id)
            await self._events.delete(session_id)
            await self._checkpointer.adelete_thread(session_id)
            await self.runs.delete_session(session_id)
            if self.dispatcher is not None:
                await self.dispatcher.queue.delete(session_id)
        self._session_locks.pop(session_id, None)
        await self._end_turn(session.tenant, f"{session_id}/")  # its queued turns' slots

    async def messages(self, session_id: str) -> list[Message]:
        await self.get_session(session_id)
        return await self._thread_messages(session_id)

    async def import_messages(self, session_id: str, messages: list[Message]) -> int:
        """Append ``messages`` to the session's conversation without running a turn (e.g.
        a history brought from elsewhere); the next turn sees them. Refused with
        :class:`SessionBusyError` while a turn runs or is queued: this holds the session's
        lease (so no replica starts one meanwhile) and its local lock. Returns the length
        of the conversation afterwards."""
        await self.get_session(session_id)
        owner = f"import-{uuid.uuid4().hex}"
        queue = self.dispatcher.queue if self.dispatcher is not None else None
        busy = SessionBusyError(
            f"session {session_id!r} is running a turn; import when it is idle",
            session=session_id,
        )
        if queue is not None and not await queue.try_lease(session_id, owner, 30.0):
            raise busy
        try:
            async with self._lock(session_id):
                current = await self.get_session(session_id)
                queued = await queue.depth(session_id) if queue is not None else 0
                if current.status is SessionStatus.RUNNING or queued:
                    raise busy
                # As the model node: the graph's next step is then END (imported messages
                # carry no tool calls), and a turn starts from its input as usual.
                await self._graph.aupdate_state(
                    {"configurable": {"thread_id": session_id}},
                    {"messages": messages, "steps": 0},
                    as_node="model",
                )

                def touch(record: SessionRecord) -> None:
                    record.updated_at = utcnow()

                await self._sessions.update(session_id, touch)
                return len(await self._thread_messages(session_id))
        finally:
            if queue is not None and self.dispatcher is not None:
                await queue.release(session_id, owner)
                self.dispatcher.kick(session_id)  # a message sent meanwhile runs now

    async def events(self, session_id: str, *, after: int = 0) -> list[TurnEvent]:
        await self.get_session(session_id)
        return await self._events.read(session_id, after=after)

    async def last_event_id(self, session_id: str) -> int:
        return await self._events.last_id(session_id)

    def follow_events(self, session_id: str, *, after: int = 0) -> AsyncIterator[TurnEvent]:
        return self._events.follow(session_id, after=after)

    # -- turns ----------------------------------------------------------------------------

    async def run_turn(
        self, session_id: str, content: str, *, idempotency_key: str | None = None
    ) -> TurnResult:
        """Run one turn to its end and return the answer. The turn runs in its own task:
        a caller that goes away (client disconnect) does not cancel it. Nobody watches
        this turn token by token, so the model is not asked to stream (cheaper); its
        other events are recorded as usual."""
        task = await self.start_turn(
            session_id, content, stream_tokens=False, idempotency_key=idempotency_key
        )
        return await asyncio.shield(task)

    async def start_turn(
        self,
        session_id: str,
        content: str,
        *,
        turn_id: str | None = None,
        stream_tokens: bool = True,
        idempotency_key: str | None = None,
    ) -> asyncio.Task[TurnResult]:
        """Start a turn in its own task. ``stream_tokens``: emit ``model.delta`` events
        (when the runtime's ``stream_tokens`` setting allows it). With a dispatcher the
        message is queued durably (once per ``idempotency_key``) and the task waits for
        the turn's outcome, wherever it runs."""
        if self.dispatcher is not None:
            after = await self._events.last_id(session_id)
            acceptance = await self.submit_turn(
                session_id, content, idempotency_key=idempotency_key, stream_tokens=stream_tokens
            )
            turn = acceptance.message.turn_id
            task = asyncio.create_task(
                self.wait_turn(session_id, turn, after=0 if acceptance.duplicate else after),
                name=f"turn {turn}",
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            return task
        session = await self.get_session(session_id)
        agent = self.loaded_agent(session.agent, tenant=session.tenant)
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
        after = await self._events.last_id(session_id)
        task = await self.start_turn(session_id, content, turn_id=turn_id)
        task.add_done_callback(_consume_exception)
        turn_id = task.get_name().removeprefix("turn ")
        async for event in self._events.follow(session_id, after=after):
            if event["turn_id"] != turn_id:
                continue
            yield event
            if event["type"] in TERMINAL_EVENTS:
                return

    async def submit_turn(
        self,
        session_id: str,
        content: str,
        *,
        idempotency_key: str | None = None,
        stream_tokens: bool = True,
    ) -> Acceptance:
        """Queue a message durably (the WebSocket acknowledges it with this acceptance)."""
        if self.dispatcher is None:
            raise RuntimeError("submit_turn needs a dispatcher")
        session = await self.get_session(session_id)
        await self.agent_for(session.agent, tenant=session.tenant)
        message_id = f"msg_{uuid.uuid4().hex}"
        slot = f"{session_id}/turn_{message_id.removeprefix('msg_')}"
        if self.quotas is not None:  # tokens left today; a concurrent-turn slot, held
            await self.quotas.check_tokens(session.tenant)  # until the turn ends (_end_turn)
            await self.quotas.take_turn(session.tenant, slot)
        try:
            acceptance = await self.dispatcher.submit(
                session_id,
                content,
                idempotency_key=idempotency_key,
                stream_tokens=stream_tokens,
                message_id=message_id,
            )
        except BaseException:
            await self._end_turn(session.tenant, slot)
            raise
        if acceptance.duplicate:  # the first message's turn holds its own slot
            await self._end_turn(session.tenant, slot)
        else:
            await self.runs.queued(acceptance.message, session)
        return acceptance

    async def _end_turn(self, tenant: str, slot: str) -> None:
        """Free a turn's ``max_concurrent_turns`` slot (``<session>/<turn>``; a session's
        every slot: ``<session>/``)."""
        if self.quotas is not None:
            await self.quotas.release_turns(tenant, slot)

    async def wait_turn(self, session_id: str, turn_id: str, *, after: int = 0) -> TurnResult:
        """The outcome of a queued turn, wherever it runs: its result, or its failure
        raised as the error it was (re-created from the ``turn.failed`` event when the
        turn ran on another replica)."""
        async for event in self._events.follow(session_id, after=after):
            if event["turn_id"] != turn_id or event["type"] not in TERMINAL_EVENTS:
                continue
            local = self._outcomes.get(turn_id)
            if local is not None:
                return await asyncio.shield(local)
            if event["type"] == EventType.TURN_COMPLETED.value:
                return TurnResult.model_validate(event["data"])
            raise _error_from(event["data"])
        raise AssertionError("unreachable: follow never ends")

    async def execute_claim(self, claim: Claim, owner: str) -> TurnResult | None:
        """Run a claimed message (the dispatcher's callback): a first attempt, or the
        recovery of a turn whose replica went away."""
        message = claim.message
        session = await self._sessions.get(message.session_id)
        if session is None:  # deleted meanwhile
            return None
        outcome: asyncio.Future[TurnResult] = asyncio.get_running_loop().create_future()
        outcome.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        self._outcomes[message.turn_id] = outcome
        slot = f"{message.session_id}/{message.turn_id}"
        try:
            if self.quotas is not None:  # renew its slot (a recovery: taken elsewhere)
                await self.quotas.take_turn(session.tenant, slot, refresh=True)
            agent = await self.agent_for(session.agent, tenant=session.tenant)
            async with self.scheduler.slot(session.tenant):  # fair across tenants
                result = await self._run_turn(
                    session,
                    agent,
                    message.turn_id,
                    message.content,
                    message.stream_tokens,
                    attempt=claim.attempt,
                    accepted_at=message.accepted_at,
                    fence=owner,
                )
        except BaseException as exc:
            if not outcome.done():
                if isinstance(exc, asyncio.CancelledError):
                    outcome.cancel()
                else:
                    outcome.set_exception(exc)
            if not isinstance(exc, asyncio.CancelledError | LeaseLostError):  # else recovered
                await self._end_turn(session.tenant, slot)
            raise
        else:
            await self._end_turn(session.tenant, slot)
            outcome.set_result(result)
            return result
        finally:
            asyncio.get_running_loop().call_later(5, self._outcomes.pop, message.turn_id, None)

    async def fail_exhausted(self, claim: Claim, owner: str) -> None:
        """A turn interrupted more often than recoveries allow: fail it with the reason."""
        message = claim.message
        failure = {
            "type": TurnError.problem_type(),
            "title": "The turn was interrupted too often",
            "detail": f"the replica running this turn went away {claim.attempt - 1} "
            "times; it is not retried again (send the message again to retry)",
            "retryable": True,
            "reason": "recovery-exhausted",
        }
        session = await self._sessions.get(message.session_id)
        letter = await self._dead_letter(
            session.agent if session is not None else "",
            message.session_id,
            message.turn_id,
            message.content,
            None,
            failure,
        )
        try:
            await self.runs.exhausted(claim, failure, letter)
            await self._events.append(
                message.session_id,
                message.turn_id,
                EventType.TURN_FAILED.value,
                failure,
                fence=owner,
            )
            await self._set_status(message.session_id, SessionStatus.IDLE, turn_done=True)
        finally:
            if session is not None:
                await self._end_turn(session.tenant, f"{message.session_id}/{message.turn_id}")

    @tracing.invoke_agent_span
    async def _run_turn(
        self,
        session: SessionRecord,
        agent: LoadedAgent,
        turn_id: str,
        content: str,
        stream_tokens: bool,
        *,
        attempt: int = 1,
        fence: str | None = None,
        accepted_at: float | None = None,
    ) -> TurnResult:
        session_id = session.id
        emitted = 0
        emitting = asyncio.Lock()

        async def emit(type_: EventType, data: dict[str, Any]) -> None:
            # One at a time and numbered (attempt·10⁶ + n): a store retry of an append that
            # already landed is recognised; ``fence``: only the lease holder may write.
            nonlocal emitted
            async with emitting:
                emitted += 1
                await self._events.append(
                    session_id,
                    turn_id,
                    type_.value,
                    data,
                    seq=attempt * 1_000_000 + emitted,
                    fence=fence,
                )

        async with self._lock(session_id):
            started = time.perf_counter()
            await self._set_status(session_id, SessionStatus.RUNNING)
            run = await self.runs.started(
                session, agent.name, agent.config.spec.model.name, turn_id, attempt, accepted_at
            )
            graph_input, resumed_from = await self._turn_input(
                session_id, turn_id, content, attempt
            )
            if attempt == 1:
                await emit(EventType.TURN_STARTED, {"agent": agent.name, "content": content})
            else:
                await emit(
                    EventType.TURN_RESUMED,
                    {
                        "agent": agent.name,
                        "content": content,
                        "attempt": attempt,
                        "reason": "replica-lost",
                        "from": resumed_from,
                    },
                )
            context = self._context(agent, emit, stream_tokens)
            context.session_id, context.turn_id = session_id, turn_id
            if self.artifacts is not None:  # large tool results go to the artifact store
                context.tool_results = ToolResultOffloader(
                    self.artifacts, session.tenant, session_id
                )
            outcome = "completed"
            try:
                # The graph's log lines (retries, breakers, tools) carry the turn's ids: its
                # nodes run in tasks that inherit this context.
                with structlog.contextvars.bound_contextvars(
                    agent=agent.name, session_id=session_id, turn_id=turn_id
                ):
                    state = await self._graph.ainvoke(
                        graph_input,
                        {
                            "configurable": {"thread_id": session_id},
                            "metadata": {"turn_id": turn_id},
                        },
                        context=context,
                        durability=self._durability,
                    )
            except AgentfleetError as exc:
                outcome = "failed"
                failure = _failure(exc)
                letter = await self._dead_letter(agent.name, session_id, turn_id, content, exc)
                if not isinstance(exc, LeaseLostError):  # moved: the new replica records it
                    await self.runs.ended(
                        run, context, started, failure=failure, dead_letter=letter
                    )
                await emit(EventType.TURN_FAILED, failure)
                raise
            except Exception as exc:
                outcome = "failed"
                log.exception("turn failed", extra={"session": session_id, "turn": turn_id})
                failure = _failure(exc)
                letter = await self._dead_letter(agent.name, session_id, turn_id, content, exc)
                await self.runs.ended(run, context, started, failure=failure, dead_letter=letter)
                await emit(EventType.TURN_FAILED, failure)
                raise
            finally:
                await self._set_status(session_id, SessionStatus.IDLE, turn_done=True)
                await self._count_tokens(session.tenant, context)
                elapsed = time.perf_counter() - started
                metrics.TURNS.labels(agent=agent.name, outcome=outcome).inc()
                metrics.TURN_SECONDS.labels(agent=agent.name).observe(elapsed)
            new_messages: list[Message] = [user_message(content), *context.produced]
            if attempt > 1:  # part of the turn ran before the recovery: take it all
                new_messages = _since_last_user_message(state["messages"])
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
                degraded=context.degraded,
            )
            await self.runs.ended(run, context, started, result=result)
            await emit(EventType.TURN_COMPLETED, result.model_dump(mode="json"))
            self._prune_checkpoints(session_id)
            return result

    def _prune_checkpoints(self, session_id: str) -> None:
        """Drop the session's older checkpoints, in the background: each holds a copy of
        the conversation (a session's storage grew with the square of its length), and
        only the newest is ever read. A failure leaves them for the next turn."""

        async def prune() -> None:
            try:
                await self._checkpointer.aprune([session_id], strategy="keep_latest")
            except Exception as exc:  # NotImplementedError included: a saver without it
                log.debug("could not prune the checkpoints of %s: %r", session_id, exc)

        self._in_background(prune(), f"prune checkpoints {session_id}")

    async def _turn_input(
        self, session_id: str, turn_id: str, content: str, attempt: int
    ) -> tuple[AgentState | None, str]:
        """What to invoke the graph with: the new message, or — when the thread's latest
        checkpoint belongs to this very turn (a recovery) — ``None``, to continue from
        that checkpoint instead of running finished steps again. A first attempt cannot
        have a checkpoint of its own, so only recoveries read the thread (a checkpoint
        read per turn is measurable in the turn benchmark)."""
        fresh: AgentState = {"messages": [user_message(content)], "steps": 0}
        if attempt == 1:
            return fresh, "start"
        snapshot = await self._graph.aget_state({"configurable": {"thread_id": session_id}})
        if (snapshot.metadata or {}).get("turn_id") != turn_id:
            return fresh, "start"
        if snapshot.next:
            return None, "checkpoint"
        return None, "end"  # the graph had finished: only the outcome was not recorded

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
            models=agent.models,
            agent=agent.name,
            tool_failure_cap=self._tool_failure_cap(),
        )

    async def _count_tokens(self, tenant: str, context: TurnContext) -> None:
        """The turn's tokens towards the tenant's ``tokens_per_day`` quota (failed turns
        spent theirs too). A counter that cannot be written does not fail the turn."""
        if self.quotas is None:
            return
        try:
            await self.quotas.add_tokens(
                tenant, context.usage.input_tokens + context.usage.output_tokens
            )
        except Exception:
            log.exception("could not count the turn's tokens", extra={"tenant": tenant})

    def _tool_failure_cap(self) -> int | None:
        if self.resilience is not None and not self.resilience.flags.tool_call_cap:
            return None
        return self.tool_failures_per_turn

    async def _dead_letter(
        self,
        agent: str,
        session_id: str,
        turn_id: str,
        content: str,
        exc: BaseException | None,
        failure: dict[str, Any] | None = None,
    ) -> str | None:
        """Record the failed turn as a dead letter; its id (``None``: not recorded)."""
        if self.dead_letters is None:
            return None
        session = await self._sessions.get(session_id)
        letter = await self.dead_letters.record(
            tenant=session.tenant if session else DEFAULT_TENANT,
            agent=agent,
            session_id=session_id,
            turn_id=turn_id,
            content=content,
            exc=exc,
            failure=failure,
        )
        return letter.id if letter is not None else None

    async def _thread_messages(self, session_id: str) -> list[Message]:
        snapshot = await self._graph.aget_state({"configurable": {"thread_id": session_id}})
        values: AgentState | dict[str, Any] = snapshot.values or {}
        return list(values.get("messages", []))

    async def _set_status(
        self, session_id: str, status: SessionStatus, *, turn_done: bool = False
    ) -> None:
        def change(record: SessionRecord) -> None:
            record.status = status
            record.updated_at = utcnow()
            if turn_done:
                record.turns += 1

        await self._sessions.update(session_id, change)  # None: deleted meanwhile

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
        if self._background:
            await asyncio.wait(set(self._background), timeout=grace_seconds)
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


def _since_last_user_message(messages: list[Message]) -> list[Message]:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "user":
            return messages[index:]
    return messages


def _error_from(failure: dict[str, Any]) -> AgentfleetError:
    """The error a ``turn.failed`` event describes (its problem ``type``), re-created."""

    def classes(cls: type[AgentfleetError]) -> list[type[AgentfleetError]]:
        return [cls, *(c for sub in cls.__subclasses__() for c in classes(sub))]

    kind = failure.get("type")
    detail = str(failure.get("detail") or "the turn failed")
    for cls in classes(AgentfleetError):
        if cls.problem_type() == kind and "__init__" not in cls.__dict__:
            return cls(detail)
    for cls in classes(AgentfleetError):
        if cls.problem_type() == kind:
            try:
                return cls(detail)
            except TypeError:
                break
    return TurnError(detail)


def _consume_exception(task: asyncio.Task[TurnResult]) -> None:
    """A streamed turn reports its failure as an event; don't log it again as unretrieved."""
    if not task.cancelled():
        task.exception()
