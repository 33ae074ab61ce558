"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from starlette.routing import BaseRoute

from agentfleet_crds.contract import ResolvedMCPServer, RuntimeConfig
from agentfleet_runtime import __version__
from agentfleet_runtime.agent.service import AgentService
from agentfleet_runtime.api.authn import authenticated
from agentfleet_runtime.api.middleware import RequestIdMiddleware
from agentfleet_runtime.api.problems import install_problem_handlers, problem_responses
from agentfleet_runtime.api.ratelimit import ApiRateLimiter
from agentfleet_runtime.api.routes import (
    admin,
    agents,
    api_keys,
    audit,
    deadletters,
    follow,
    health,
    runs,
    sessions,
    stream,
    tenants,
)
from agentfleet_runtime.api.routes import artifacts as artifacts_routes
from agentfleet_runtime.api.routes import discovery as discovery_routes
from agentfleet_runtime.api.routes import mcp_servers as mcp_servers_routes
from agentfleet_runtime.api.versioning import API_PREFIX
from agentfleet_runtime.artifacts.wiring import open_artifacts
from agentfleet_runtime.audit import AuditLog, AuthFailureAuditor
from agentfleet_runtime.auth import create_authenticator
from agentfleet_runtime.config import Environment, RuntimeSettings
from agentfleet_runtime.discovery.wiring import open_discovery
from agentfleet_runtime.providers.factory import ProviderPool, ProviderSettings
from agentfleet_runtime.readiness import not_ready
from agentfleet_runtime.realtime.admission import Admission
from agentfleet_runtime.realtime.drain import Drainer
from agentfleet_runtime.realtime.hub import ConnectionHub
from agentfleet_runtime.resilience.wiring import open_resilience
from agentfleet_runtime.scheduling import FairScheduler
from agentfleet_runtime.secrets.factory import build_secret_manager
from agentfleet_runtime.secrets.wiring import connect_provider_pool, model_api_key_lookup
from agentfleet_runtime.state.audit_store import AuditWriter
from agentfleet_runtime.state.base import AgentSource
from agentfleet_runtime.state.dispatcher import TurnDispatcher
from agentfleet_runtime.state.factory import open_state
from agentfleet_runtime.state.mcp_registry import MCPServerSync
from agentfleet_runtime.tenants import TenantQuotaGuard

log = logging.getLogger(__name__)

#: Audit events a replica keeps queued while the state backend cannot take them.
AUDIT_QUEUE_CAPACITY = 10_000

LifespanHook = Callable[[], AbstractAsyncContextManager[Any]]


def provider_settings(settings: RuntimeSettings) -> ProviderSettings:
    keys = settings.keys
    return ProviderSettings(
        fake_base_url=settings.fake_provider_url,
        anthropic_api_key=(
            keys.anthropic_api_key.get_secret_value() if keys.anthropic_api_key else None
        ),
        openai_api_key=keys.openai_api_key.get_secret_value() if keys.openai_api_key else None,
        secrets_dir=settings.secrets_dir,
    )


def create_app(
    settings: RuntimeSettings | None = None,
    *,
    runtime_config: RuntimeConfig | None = None,
    mcp_servers: Mapping[str, ResolvedMCPServer] | None = None,
    routes: Sequence[BaseRoute] = (),
    lifespan_hooks: Sequence[LifespanHook] = (),
    serving: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """Build the runtime app.

    ``runtime_config`` agents are loaded at start-up, read-only when ``cluster_mode``;
    ``mcp_servers`` are the servers agents created through the API may reference;
    ``routes``/``lifespan_hooks`` let ``agentfleet dev`` mount its embedded fake provider
    and demo MCP server into the same process; ``serving`` returns once the server accepts
    connections (agents load after it, as their tools may be served by this process).
    """
    settings = settings or RuntimeSettings()
    config = runtime_config or RuntimeConfig()
    replica = settings.replica_id or f"{socket.gethostname()}-{os.getpid()}"
    create_authenticator(settings.auth)  # refuse bad auth settings before serving
    audit_log = AuditLog()
    # Audit events go to the state backend's audit store, written in the background.
    audit_writer = AuditWriter(AUDIT_QUEUE_CAPACITY)
    audit_log.add_sink(audit_writer)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        secrets = build_secret_manager(
            settings.secrets,
            secrets_dir=settings.secrets_dir,
            development=settings.environment is Environment.DEVELOPMENT,
            resolved={agent.name: agent.secrets for agent in config.agents},
            audit=audit_log,
        )
        await secrets.start()  # first load; readiness stays false while required ones miss
        consumer = _secret_consumer(config)
        providers = ProviderPool(
            replace(
                provider_settings(settings),
                api_key_lookup=model_api_key_lookup(
                    secrets, consumer=consumer, model_api_keys=settings.secrets.model_api_keys
                ),
            ),
            http_pool=settings.pools.pool(settings.pools.model_http),
        )
        disconnect_secrets = connect_provider_pool(
            secrets,
            providers,
            [name for name in secrets.names() if secrets.allowed(name, consumer)],
            consumer=consumer,
        )
        app.state.secrets = secrets
        state_stack = contextlib.AsyncExitStack()
        state = await state_stack.enter_async_context(open_state(settings.state))
        audit_writer.start(state.audit)
        state_stack.push_async_callback(audit_writer.aclose)  # flushed before state closes
        # API keys live in the state backend: shared by every replica on Redis.
        app.state.authenticator = create_authenticator(settings.auth, state.api_keys)
        app.state.api_limits = ApiRateLimiter(
            settings.rate_limits,
            state.rate_limits,
            state.tenants,
            default_quotas=settings.tenancy.default_quotas,
        )
        quotas = TenantQuotaGuard(state.tenants, settings.tenancy.default_quotas, state.quotas)
        app.state.quotas = quotas
        service = AgentService(
            agents=state.agents,
            sessions=state.sessions,
            events=state.events,
            checkpointer=state.checkpointer,
            providers=providers,
            stream_tokens=settings.stream_tokens,
            read_only=settings.cluster_mode,
            runs=state.runs,
        )
        service.quotas = quotas
        # Turns executing at once here, admitted round-robin across tenants.
        service.scheduler = FairScheduler(settings.scheduling.max_concurrent_turns)
        await state_stack.enter_async_context(open_resilience(settings, state, service, app.state))
        artifacts = await state_stack.enter_async_context(
            open_artifacts(settings.artifacts, service.resilience)
        )
        service.artifacts = app.state.artifacts = artifacts
        service.mcp_servers.update(mcp_servers or {})
        for agent in config.agents:
            service.mcp_servers.update({s.name: s for s in agent.mcp_servers})
        dispatcher = TurnDispatcher(
            state.turns,
            service.execute_claim,
            owner=replica,
            lease_seconds=settings.state.lease_seconds,
            sweep_interval=settings.state.sweep_interval_seconds,
            max_recoveries=settings.state.max_turn_recoveries,
            exhausted=service.fail_exhausted,
            broadcast=state.broadcast,
        )
        state.control_handlers.append(dispatcher.on_control)
        state.control_handlers.append(mcp_servers_routes.refresh_handler(service, replica))
        # API-registered MCP servers: shared through the state backend, hot on every replica.
        mcp_sync = MCPServerSync(
            state.mcp_servers,
            service.mcp_servers,
            replica=replica,
            broadcast=state.broadcast,
            closed=mcp_servers_routes.close_removed(service),
            changed=mcp_servers_routes.switch_changed(service),
        )
        await mcp_sync.try_load()  # Redis failing: the resync loop tries again
        state.control_handlers.append(mcp_sync.on_control)
        mcp_sync.start()
        state_stack.push_async_callback(mcp_sync.aclose)
        app.state.mcp_sync = mcp_sync
        service.dispatcher = dispatcher
        hub = ConnectionHub(settings.realtime)
        app.state.service = service
        app.state.state_backend = state
        app.state.connections = hub
        # Saturated (connections, waiting turns): new streams refused, readiness false.
        app.state.admission = Admission(
            settings.realtime, hub, scheduler=service.scheduler, quotas=quotas
        )
        app.state.shutting_down = False
        app.state.drainer = Drainer(
            app.state,
            hub,
            dispatcher,
            delay_seconds=settings.realtime.drain_delay_seconds,
            grace_seconds=settings.shutdown_grace_seconds,
        )
        service.drain_seconds = settings.discovery.drain_seconds
        service.tool_list_ttl = settings.pools.tool_list_ttl_seconds
        service.mcp_http_pool = settings.pools.pool(settings.pools.mcp_http)

        async def not_ready_detail() -> str | None:
            reason = await not_ready(app.state)
            return None if reason is None else reason.detail

        discovery = await state_stack.enter_async_context(
            open_discovery(
                settings,
                config,
                service,
                state,
                replica=replica,
                not_ready=not_ready_detail,
                refusing=lambda: list(app.state.resilience.health()["refusing"]),
                secrets=secrets,
            )
        )
        app.state.discovery = discovery

        def loaded() -> None:
            dispatcher.start()
            discovery.agents_loaded()

        async with contextlib.AsyncExitStack() as stack:
            for hook in lifespan_hooks:
                await stack.enter_async_context(hook())
            # Agents load once the server listens: their tool servers may be served by
            # this very process (agentfleet dev). Readiness stays false until then.
            loading = asyncio.create_task(_load_agents(service, config, serving, loaded))
            app.state.loading = loading
            hub.start()
            try:
                yield
            finally:
                app.state.shutting_down = True
                if discovery.config_source is not None:  # no reload while draining
                    await discovery.config_source.aclose()
                loading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loading
                await app.state.drainer.drain()  # no-op when a SIGTERM already drained
                await hub.aclose()
                await dispatcher.aclose()
                await service.aclose(grace_seconds=settings.shutdown_grace_seconds)
                await providers.aclose()
                await state_stack.aclose()
                disconnect_secrets()
                await secrets.aclose()

    app = FastAPI(
        title="agentfleet runtime",
        version=__version__,
        summary="Run LangGraph agents that call LLMs and MCP tools.",
        description="REST and streaming API of an agentfleet runtime. Errors are RFC 9457 "
        "problem details (`application/problem+json`) with a stable `type` URI.",
        lifespan=lifespan,
        routes=list(routes),
    )
    install_problem_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    # Every authenticated route: no or bad credentials, missing scope, rate limit.
    api = APIRouter(
        prefix=API_PREFIX,
        dependencies=[Depends(authenticated)],
        responses=problem_responses(401, 403, 429),
    )
    api.include_router(agents.router)
    api.include_router(sessions.router)
    api.include_router(follow.router)
    api.include_router(deadletters.router)
    api.include_router(api_keys.router)
    api.include_router(tenants.router)
    api.include_router(runs.router)
    api.include_router(mcp_servers_routes.router)
    api.include_router(audit.router)
    api.include_router(artifacts_routes.router)
    app.include_router(api)
    # The resilience admin API authenticates itself: the admin scope of the operator
    # tenant, or the deprecated AGENTFLEET_RESILIENCE__ADMIN_TOKEN.
    app.include_router(admin.router, prefix=API_PREFIX)
    app.include_router(discovery_routes.router, prefix=API_PREFIX)
    # WebSockets authenticate themselves (header or first frame, with close codes).
    app.include_router(stream.router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.state.settings = settings
    app.state.authenticator = create_authenticator(settings.auth)  # until state opens
    app.state.replica = replica
    # The one audit log of the process; GET /api/v1/audit reads the state backend's
    # audit store (and this replica's events not written there yet) through the writer.
    app.state.audit = audit_log
    app.state.audit_writer = audit_writer
    app.state.auth_failures = AuthFailureAuditor(audit_log)
    return app


def _secret_consumer(config: RuntimeConfig) -> str:
    """Who reads secrets in this process, for access control and audit: the agent, when
    the process runs one (the operator's one-Agent-per-Deployment), else the runtime."""
    if len(config.agents) == 1:
        return f"agent:{config.agents[0].name}"
    return "component:runtime"


async def _load_agents(
    service: AgentService,
    config: RuntimeConfig,
    serving: Callable[[], Awaitable[None]] | None,
    loaded: Callable[[], None] | None = None,
) -> None:
    if serving is not None:
        await serving()
    try:
        await _load_config_agents(service, config)
    finally:
        if loaded is not None:  # only now may this replica take over queued turns
            loaded()


async def _load_config_agents(service: AgentService, config: RuntimeConfig) -> None:
    for agent in config.agents:
        try:
            await service.load_agent(agent, AgentSource.CONFIG)
        except Exception:
            log.exception("agent failed to load", extra={"agent": agent.name})
