"""``/api/v1/mcp-servers``: the MCP servers agents may use — list, inspect (connection
state, tools), refresh (reconnect and list the tools again without a restart) and, outside
cluster mode, register/unregister from the same spec an MCPServer manifest has.

Servers from the runtime config are shared by every tenant and read-only; a server
registered through the API belongs to its tenant (others do not see it) and is kept in
the state backend: every replica knows it, and it survives restarts (see
:mod:`agentfleet_runtime.state.mcp_registry`). ``stdio``
servers run a command on the runtime's host: only admins of the operator tenant may
register one. Reads need the ``read`` scope, changes ``admin``; changes are audited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from agentfleet_crds.contract import ResolvedMCPServer, UnresolvableError, resolve_mcp_server
from agentfleet_crds.toolschema import input_schema_hash
from agentfleet_crds.v1alpha1.common import DNS_1035_LABEL
from agentfleet_crds.v1alpha1.mcpserver import (
    MCP_SERVER_NAME_MAX_LENGTH,
    MCPServer,
    MCPServerMeta,
    MCPServerSpec,
    MCPTimeouts,
    MCPTransport,
)
from agentfleet_runtime.agent.service import AgentService
from agentfleet_runtime.api.audit import audit
from agentfleet_runtime.api.authn import Admin, Reader
from agentfleet_runtime.api.deps import Service
from agentfleet_runtime.api.pagination import Page, PageQuery, Sorts, paginate
from agentfleet_runtime.api.problems import problem_responses
from agentfleet_runtime.auth.base import ForbiddenError, Principal
from agentfleet_runtime.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    ReadOnlyError,
    ReloadFailedError,
)
from agentfleet_runtime.state.factory import ControlHandler
from agentfleet_runtime.state.mcp_registry import MCPServerSync
from agentfleet_runtime.tools.catalog import (
    ConnectionState,
    MCPServerEntry,
    MCPServerSource,
    redact_args,
    redact_url,
    reload_server,
    server_state,
    server_tools,
    users,
)
from agentfleet_runtime.tools.registry import ReloadResult

log = logging.getLogger(__name__)

router = APIRouter(prefix="/mcp-servers", tags=["mcp servers"])

#: The control message that makes every replica refresh a server.
REFRESH_MESSAGE = "mcp.refresh"


class MCPServerCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "files", "spec": {"url": "https://files.example.com/mcp"}}]
        },
    )

    name: Annotated[
        str, Field(min_length=1, max_length=MCP_SERVER_NAME_MAX_LENGTH, pattern=DNS_1035_LABEL)
    ]
    spec: MCPServerSpec = Field(description="The same spec as an MCPServer manifest's.")


class IncompatibleToolPublic(BaseModel):
    agent: str
    tool: str
    expected: str = Field(description="The pinned input-schema hash.")
    actual: str | None = Field(description="The hash listed now; null: not listed.")


class MCPServerPublic(BaseModel):
    name: str
    transport: MCPTransport
    url: str | None = Field(description="Password and credential-like parameters masked.")
    command: str | None
    args: list[str] = Field(description="Credential-like values masked.")
    env: list[str] = Field(description="Names of the environment variables it gets.")
    headers: list[str] = Field(description="Names of the headers sent (values from Secrets).")
    timeouts: MCPTimeouts
    source: MCPServerSource = Field(
        description="`config` servers come from manifests/operator config and are read-only."
    )
    state: ConnectionState = Field(
        description="As the agents on this replica see it: `connected`, `unavailable`, "
        "`pending`, or `idle` (no loaded agent uses it)."
    )
    reason: str | None = Field(description="Why it is unavailable.")
    protocol_version: str | None = Field(description="The MCP version negotiated.")
    server_name: str | None = Field(
        default=None, description="The name in the server's `serverInfo`."
    )
    server_version: str | None = Field(
        default=None, description="The version in the server's `serverInfo`."
    )
    tools: int | None = Field(description="How many tools it offers (known when connected).")
    incompatible_tools: list[IncompatibleToolPublic] = Field(
        default_factory=list,
        description="Pinned tools withheld from an agent (on this replica): the server lists "
        "them with another input schema (`actual`) than pinned (`expected`), or not at all.",
    )
    agents: list[str] = Field(description="The agents (that you can see) using it.")
    created_at: datetime


class MCPToolPublic(BaseModel):
    name: str
    description: str
    input_schema: dict[str, object]
    input_schema_hash: str = Field(
        description="sha256 of the input schema as canonical JSON: what "
        "`spec.tools[].pinnedTools[].inputSchemaHash` pins."
    )


SORTS: Sorts[MCPServerEntry] = Sorts(
    keys={"name": lambda e: e.name, "created_at": lambda e: e.created_at},
    default="name",
    id_of=lambda e: e.name,
)
TOOL_SORTS: Sorts[MCPToolPublic] = Sorts(
    keys={"name": lambda t: t.name}, default="name", id_of=lambda t: t.name
)


def _entry(service: AgentService, name: str, tenant: str) -> MCPServerEntry:
    entry = service.mcp_servers.entry(name, tenant=tenant)
    if entry is None:
        raise NotFoundError(f"MCP server {name!r} does not exist", mcp_server=name)
    return entry


async def _users(service: AgentService, name: str, tenant: str | None) -> list[str]:
    agents = await service.list_agents(tenant=tenant)
    return [a.name for a in agents if any(t.mcp_server_ref.name == name for t in a.spec.tools)]


def _public(service: AgentService, entry: MCPServerEntry, agents: list[str]) -> MCPServerPublic:
    config = entry.config
    seen = server_state(entry.name, service.tool_registries())
    return MCPServerPublic(
        name=entry.name,
        transport=config.transport,
        url=redact_url(config.url),
        command=config.command,
        args=redact_args(config.args),
        env=sorted({*config.env, *config.env_files}),
        headers=sorted(config.header_files),
        timeouts=config.timeouts,
        source=entry.source,
        state=seen.state,
        reason=seen.reason,
        protocol_version=seen.protocol_version,
        server_name=seen.server_name,
        server_version=seen.server_version,
        tools=seen.tools,
        incompatible_tools=[
            IncompatibleToolPublic(
                agent=_name(key), tool=m.tool, expected=m.expected, actual=m.actual
            )
            for key, mismatches in sorted(seen.incompatible_tools.items())
            if _name(key) in agents
            for m in mismatches
        ],
        agents=agents,
        created_at=entry.created_at,
    )


def _name(agent_key: str) -> str:
    """An agent's name from its key (``<tenant>/<name>``, or the name of a shared one)."""
    return agent_key.rpartition("/")[2]


def _visible(agent_key: str, tenant: str) -> bool:
    owner, _, _ = agent_key.rpartition("/")
    return not owner or owner == tenant


def _writable(request: Request) -> None:
    if request.app.state.settings.cluster_mode:
        raise ReadOnlyError(
            "this runtime runs in cluster mode: MCP servers are defined by MCPServer "
            "manifests (kubectl apply), not through the API"
        )


@router.get("", summary="List MCP servers", responses=problem_responses(422))
async def list_mcp_servers(
    service: Service, caller: Reader, request: Request, response: Response, page: PageQuery
) -> Page[MCPServerPublic]:
    """The MCP servers agents can use: shared ones from the runtime config and the
    tenant's own, with their connection state."""
    entries = service.mcp_servers.entries(tenant=caller.tenant)
    result = paginate(entries, page, SORTS, request=request, response=response)
    agents = await service.list_agents(tenant=caller.tenant)

    def public(entry: MCPServerEntry) -> MCPServerPublic:
        using = [
            a.name for a in agents if any(t.mcp_server_ref.name == entry.name for t in a.spec.tools)
        ]
        return _public(service, entry, using)

    return result.map(public)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register an MCP server (not in cluster mode)",
    description="From the same spec an MCPServer manifest has (`url` or `stdio`; `hosted` "
    "needs the operator). Agents created afterwards may reference it. Cluster mode: 409 "
    "`read-only`. `stdio` runs a command on the runtime's host: operator tenant's admins "
    "only. Kept in the state backend: every replica knows it.",
    responses=problem_responses(403, 409, 422),
)
async def register_mcp_server(
    body: MCPServerCreate, service: Service, caller: Admin, request: Request
) -> MCPServerPublic:
    _writable(request)
    config = _resolve(request, caller, body.name, body.spec)
    entry = await _sync(request).register(config, tenant=caller.tenant)
    audit(
        request,
        caller,
        "mcp_server.registered",
        subject_type="mcp_server",
        subject=body.name,
        transport=config.transport.value,
    )
    return _public(service, entry, [])


class MCPServerUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"spec": {"url": "https://files-v2.example.com/mcp"}}]},
    )

    spec: MCPServerSpec = Field(description="The server's new spec (replaces the old one).")


@router.put(
    "/{name}",
    summary="Change a registered MCP server (hot reload; not in cluster mode)",
    description="Replaces the spec of a server registered through the API. Every agent "
    "using it switches over: a NEW connection to the new definition is opened and checked "
    "(handshake and protocol version, tool listing, pinned tool schemas) before it replaces "
    "the old one, whose calls in flight finish first. When the new definition fails its "
    "checks for an agent here, nothing changes (the old definition keeps serving) and the "
    "answer is 502 `mcp-reload-failed`; a server no agent uses is probed first (502/504 "
    "when it cannot be reached). Other replicas switch over when they hear of the change. "
    "Servers from manifests: 409 `read-only`.",
    responses=problem_responses(403, 404, 409, 422, 502, 504),
)
async def replace_mcp_server(
    name: str, body: MCPServerUpdate, service: Service, caller: Admin, request: Request
) -> MCPServerPublic:
    _writable(request)
    entry = _entry(service, name, caller.tenant)
    _refuse_config_server(entry, "change the manifest instead")
    config = _resolve(request, caller, name, body.spec)
    registries = service.tool_registries()
    if not users(name, registries):
        await server_tools(config, registries)  # raises when unreachable
    results = await reload_server(name, registries, config)
    failed = {agent: r for agent, r in results.items() if r.outcome != "switched"}
    if failed:
        for agent in set(results) - set(failed):  # back to the definition in force
            await registries[agent].reload(name, entry.config)
        visible = {_name(k): r for k, r in failed.items() if _visible(k, caller.tenant)}
        raise _reload_failed(
            name, "the new definition failed its checks; the old one keeps serving: ", visible
        )
    updated = await _sync(request).replace(config, tenant=entry.tenant or caller.tenant)
    audit(
        request,
        caller,
        "mcp_server.replaced",
        subject_type="mcp_server",
        subject=name,
        transport=config.transport.value,
    )
    return _public(service, updated, await _users(service, name, caller.tenant))


@router.get("/{name}", summary="Get an MCP server", responses=problem_responses(404))
async def get_mcp_server(name: str, service: Service, caller: Reader) -> MCPServerPublic:
    """An MCP server's definition and connection state."""
    entry = _entry(service, name, caller.tenant)
    return _public(service, entry, await _users(service, name, caller.tenant))


@router.get(
    "/{name}/tools",
    summary="The server's tools (name, description, input schema)",
    description="As a connected agent listed them, else listed over a connection of its "
    "own (bounded by the server's discovery timeout; 502/504 when it cannot be reached).",
    responses=problem_responses(404, 422, 502, 504),
)
async def list_mcp_server_tools(
    name: str,
    service: Service,
    caller: Reader,
    request: Request,
    response: Response,
    page: PageQuery,
) -> Page[MCPToolPublic]:
    entry = _entry(service, name, caller.tenant)
    specs = await server_tools(entry.config, service.tool_registries())
    tools = [
        MCPToolPublic(
            name=s.name,
            description=s.description,
            input_schema=s.input_schema,
            input_schema_hash=input_schema_hash(s.input_schema),
        )
        for s in specs
    ]
    return paginate(tools, page, TOOL_SORTS, request=request, response=response)


@router.post(
    "/{name}/refresh",
    summary="Reconnect and list the tools again (hot reload)",
    description="Every agent using the server (on every replica) opens a NEW connection, "
    "checks it (handshake and protocol version, tool listing, pinned tool schemas) and "
    "only then switches to it; calls in flight on the old connection finish first. Their "
    "next turn is offered the new list. When an agent's new connection fails its checks, "
    "its old connection keeps serving and the answer is 502 `mcp-reload-failed` (`agents`: "
    "each agent's outcome and reason). A server no agent uses is probed (502/504 when it "
    "cannot be reached).",
    responses=problem_responses(404, 502, 504),
)
async def refresh_mcp_server(
    name: str, service: Service, caller: Admin, request: Request
) -> MCPServerPublic:
    entry = _entry(service, name, caller.tenant)
    registries = service.tool_registries()
    results = await reload_server(name, registries)
    if not results:
        await server_tools(entry.config, registries)  # raises when unreachable
    backend = request.app.state.state_backend
    await backend.broadcast(
        {"type": REFRESH_MESSAGE, "server": name, "origin": request.app.state.replica}
    )
    outcomes = {agent: result.outcome for agent, result in results.items()}
    audit(
        request,
        caller,
        "mcp_server.refreshed",
        subject_type="mcp_server",
        subject=name,
        agents=outcomes,
    )
    # agent keys are ``<tenant>/<name>`` for a tenant's own: show the caller only its own
    results = {_name(k): r for k, r in results.items() if _visible(k, caller.tenant)}
    failed = {agent: r for agent, r in results.items() if r.outcome != "switched"}
    if failed:
        raise _reload_failed(
            name, "the new connection failed its checks for ", failed, reported=results
        )
    return _public(service, entry, await _users(service, name, caller.tenant))


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unregister an MCP server (not in cluster mode)",
    description="Servers from manifests or the operator's config are read-only (409 "
    "`read-only`); a server an agent still uses is refused (409 `conflict`, `agents`).",
    responses=problem_responses(404, 409),
)
async def unregister_mcp_server(
    name: str, service: Service, caller: Admin, request: Request
) -> None:
    _writable(request)
    entry = _entry(service, name, caller.tenant)
    _refuse_config_server(entry, "change or delete the manifest instead")
    using = await _users(service, name, None)
    if using:
        raise ConflictError(
            f"MCP server {name!r} is used by agents; delete them first",
            mcp_server=name,
            agents=await _users(service, name, caller.tenant),
        )
    await _sync(request).unregister(name)
    audit(request, caller, "mcp_server.unregistered", subject_type="mcp_server", subject=name)


def _resolve(
    request: Request, caller: Principal, name: str, spec: MCPServerSpec
) -> ResolvedMCPServer:
    """How this runtime reaches the server ``spec`` describes (422 when it cannot:
    ``hosted`` needs the operator); ``stdio`` runs a command on the runtime's host, so
    only the operator tenant's admins may define one."""
    if spec.stdio is not None and not _operator(request, caller):
        raise ForbiddenError("only admins of the operator tenant register stdio MCP servers")
    server = MCPServer(metadata=MCPServerMeta(name=name), spec=spec)
    try:
        return resolve_mcp_server(
            server, secrets_dir=str(request.app.state.settings.secrets_dir), in_cluster=False
        )
    except UnresolvableError as exc:
        raise InvalidRequestError(str(exc), field="body.spec") from exc


def _refuse_config_server(entry: MCPServerEntry, instead: str) -> None:
    if entry.source is MCPServerSource.CONFIG:
        raise ReadOnlyError(
            f"MCP server {entry.name!r} comes from the runtime config (an MCPServer "
            f"manifest); {instead}",
            mcp_server=entry.name,
        )


def _reload_failed(
    name: str,
    lead: str,
    failed: Mapping[str, ReloadResult],
    *,
    reported: Mapping[str, ReloadResult] | None = None,
) -> ReloadFailedError:
    """502 ``mcp-reload-failed``: ``failed`` agents in the message, each of ``reported``
    (default: the failed ones) with its outcome and reason in ``agents``."""
    shown = failed if reported is None else reported
    return ReloadFailedError(
        f"MCP server {name!r}: {lead}"
        + "; ".join(f"agent {agent!r} ({r.outcome}): {r.reason}" for agent, r in failed.items()),
        dependency=f"mcp:{name}",
        mcp_server=name,
        agents={agent: {"outcome": r.outcome, "reason": r.reason} for agent, r in shown.items()},
    )


def _sync(request: Request) -> MCPServerSync:
    sync: MCPServerSync = request.app.state.mcp_sync
    return sync


def _operator(request: Request, caller: Principal) -> bool:
    operator: str = request.app.state.settings.tenancy.operator_tenant
    return caller.tenant == operator


def refresh_handler(service: AgentService, replica: str) -> ControlHandler:
    """The control-message handler that refreshes a server here when another replica
    was asked to (``POST …/refresh``)."""
    running: set[asyncio.Task[Any]] = set()

    def handle(message: dict[str, Any]) -> None:
        if message.get("type") != REFRESH_MESSAGE or message.get("origin") == replica:
            return
        task = asyncio.get_running_loop().create_task(
            reload_server(str(message.get("server")), service.tool_registries())
        )
        running.add(task)
        task.add_done_callback(running.discard)

    return handle


def switch_changed(service: AgentService) -> Callable[[set[str]], Awaitable[None]]:
    """What to do here when servers were changed on another replica: agents here using
    one switch over to its new definition (checked first; a failing one keeps the old
    connection and is logged)."""

    async def changed(names: set[str]) -> None:
        registries = service.tool_registries()
        for name in sorted(names):
            config = service.mcp_servers.get(name)
            if config is None or not users(name, registries):
                continue
            results = await reload_server(name, registries, config)
            for agent, result in results.items():
                if result.outcome != "switched":
                    log.warning(
                        "MCP server changed elsewhere: the new definition failed its checks "
                        "here; the old connection keeps serving",
                        extra={"mcp_server": name, "agent": agent, "reason": result.reason},
                    )

    return changed


def close_removed(service: AgentService) -> Callable[[set[str]], Awaitable[None]]:
    """What to do here when servers were unregistered (possibly on another replica):
    agents still loaded on this replica that use them — deleted elsewhere, as a server in
    use cannot be unregistered — are dropped, which closes their connections."""

    async def closed(names: set[str]) -> None:
        for key, registry in service.tool_registries().items():
            if not names & set(registry.health()):
                continue
            tenant, _, name = key.rpartition("/")
            try:
                await service.agent_for(name, tenant=tenant or None)
            except NotFoundError:
                pass  # dropped and closed
            except Exception:
                log.warning("could not drop an agent using a removed MCP server", exc_info=True)

    return closed
