"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI
from langgraph.checkpoint.memory import InMemorySaver
from starlette.routing import BaseRoute

from agentfleet_crds.contract import ResolvedMCPServer, RuntimeConfig
from agentfleet_runtime import __version__
from agentfleet_runtime.agent.service import AgentService
from agentfleet_runtime.api.middleware import RequestIdMiddleware
from agentfleet_runtime.api.problems import install_problem_handlers
from agentfleet_runtime.api.routes import agents, health, sessions, stream
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.providers.factory import ProviderPool, ProviderSettings
from agentfleet_runtime.state.base import AgentSource
from agentfleet_runtime.state.memory import MemoryAgentStore, MemoryEventLog, MemorySessionStore

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

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

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        providers = ProviderPool(provider_settings(settings))
        service = AgentService(
            agents=MemoryAgentStore(),
            sessions=MemorySessionStore(),
            events=MemoryEventLog(),
            checkpointer=InMemorySaver(),
            providers=providers,
            stream_tokens=settings.stream_tokens,
            read_only=settings.cluster_mode,
        )
        service.mcp_servers.update(mcp_servers or {})
        for agent in config.agents:
            service.mcp_servers.update({s.name: s for s in agent.mcp_servers})
        app.state.service = service
        app.state.shutting_down = False
        async with contextlib.AsyncExitStack() as stack:
            for hook in lifespan_hooks:
                await stack.enter_async_context(hook())
            # Agents load once the server listens: their tool servers may be served by
            # this very process (agentfleet dev). Readiness stays false until then.
            loading = asyncio.create_task(_load_agents(service, config, serving))
            app.state.loading = loading
            try:
                yield
            finally:
                app.state.shutting_down = True
                loading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loading
                await service.aclose(grace_seconds=settings.shutdown_grace_seconds)
                await providers.aclose()

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
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(agents.router)
    api.include_router(sessions.router)
    api.include_router(stream.router)
    app.include_router(api)
    app.include_router(health.router)
    app.state.settings = settings
    return app


async def _load_agents(
    service: AgentService,
    config: RuntimeConfig,
    serving: Callable[[], Awaitable[None]] | None,
) -> None:
    if serving is not None:
        await serving()
    for agent in config.agents:
        try:
            await service.load_agent(agent, AgentSource.CONFIG)
        except Exception:
            log.exception("agent failed to load", extra={"agent": agent.name})
