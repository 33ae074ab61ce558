"""The runtime config: what the operator renders into an Agent's ConfigMap and what the
runtime reads (``agentfleet serve --config``), and what ``agentfleet dev -f`` builds from
manifests. One model, so operator and runtime cannot drift apart."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentfleet_crds.v1alpha1.agent import AgentSpec
from agentfleet_crds.v1alpha1.common import CamelModel, SecretKeyRef
from agentfleet_crds.v1alpha1.mcpserver import MCPServer, MCPTimeouts, MCPTransport
from agentfleet_crds.v1alpha1.resiliencepolicy import ResiliencePolicySpec
from agentfleet_crds.v1alpha1.secretbinding import SecretProviderName

#: Where the operator mounts Kubernetes Secrets in runtime pods: ``<dir>/<secret>/<key>``.
SECRETS_MOUNT_DIR = "/var/run/agentfleet/secrets"
#: Where the operator mounts the rendered runtime config.
CONFIG_MOUNT_PATH = "/etc/agentfleet/config.yaml"
#: DNS suffix of in-cluster Service names unless the operator is told otherwise.
DEFAULT_CLUSTER_DOMAIN = "cluster.local"

#: The runtime's Server-Sent-Event routes end in ``/stream`` (an RE2 regex over the path);
#: its WebSockets are told by the ``Upgrade: websocket`` header. The operator's mesh objects
#: never retry these and give them no request timeout (a retried stream replays a prompt
#: whose tokens the user already saw): a new streaming route must follow the convention.
STREAM_PATH_REGEX = r"^/.*/stream$"


class ResolvedMCPServer(CamelModel):
    """An MCPServer reduced to how the runtime reaches it."""

    name: str
    transport: MCPTransport
    url: str | None = None
    #: Direct URLs of the replicas of the server at ``url`` (``MCPServer.spec.endpoints``):
    #: the runtime calls ``url`` while it is healthy and these while its breaker is open.
    endpoints: list[str] = Field(default_factory=list)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    #: env var name → file holding its value (a mounted Secret key).
    env_files: dict[str, str] = Field(default_factory=dict)
    #: header name → file holding its value (a mounted Secret key); never the value itself.
    header_files: dict[str, str] = Field(default_factory=dict)
    timeouts: MCPTimeouts = Field(default_factory=MCPTimeouts)
    allowed_tools: list[str] | None = None
    #: Tool name → the input-schema hash the agent pinned it to
    #: (:func:`agentfleet_crds.toolschema.input_schema_hash`): a pinned tool listed with
    #: another schema, or not listed, is withheld from the model and reported.
    #: ``None``: nothing pinned.
    pinned_tools: dict[str, str] | None = None
    #: The service mesh retries calls to this server (its ResiliencePolicy says
    #: ``mesh.retries: mesh`` and a mesh is present): the runtime must then make ONE attempt
    #: per call, never retry in-process (retries would multiply: see docs/operator.md).
    mesh_retries: bool = False


class ResolvedSecret(CamelModel):
    """A secret a SecretBinding gives the agent, by logical name. Never the value: a
    ``kubernetes`` secret is a mounted file (rotation reaches the pod without a restart);
    the other providers are read by the runtime's secret provider from ``remote``."""

    name: str
    provider: SecretProviderName
    #: The SecretBinding it comes from.
    binding: str
    #: provider kubernetes: the file holding the value.
    file: str | None = None
    #: the cloud providers and Vault: ARN, path or name in the provider.
    key: str | None = None
    property: str | None = None
    version: str | None = None
    refresh_interval_seconds: int = 300


class AgentConfig(CamelModel):
    """Everything the runtime needs to run one agent."""

    name: Annotated[str, Field(min_length=1, max_length=63)]
    namespace: str = "default"
    spec: AgentSpec
    mcp_servers: list[ResolvedMCPServer] = Field(default_factory=list)
    resilience: ResiliencePolicySpec = Field(default_factory=ResiliencePolicySpec)
    #: Secrets bound to the agent by SecretBindings, by logical name (sorted).
    secrets: list[ResolvedSecret] = Field(default_factory=list)


class RuntimeConfig(CamelModel):
    """The whole file the runtime loads at start-up."""

    agents: list[AgentConfig] = Field(default_factory=list)


def secret_file(secrets_dir: str, ref: SecretKeyRef) -> str:
    """Where a Secret key is mounted in a runtime pod."""
    return f"{secrets_dir.rstrip('/')}/{ref.name}/{ref.key}"


def hosted_mcp_service_name(name: str) -> str:
    """The Service in front of a hosted MCPServer."""
    return f"{name}-mcp"


def hosted_mcp_url(server: MCPServer, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> str:
    """The in-cluster URL of an MCPServer the operator hosts."""
    assert server.spec.hosted is not None
    hosted = server.spec.hosted
    namespace = server.metadata.namespace
    service = hosted_mcp_service_name(server.metadata.name)
    return f"http://{service}.{namespace}.svc.{cluster_domain}:{hosted.port}{hosted.path}"


class UnresolvableError(ValueError):
    """An MCPServer that cannot be reached in this environment (e.g. ``hosted`` without a
    cluster)."""


def resolve_mcp_server(
    server: MCPServer,
    *,
    secrets_dir: str = SECRETS_MOUNT_DIR,
    allowed_tools: list[str] | None = None,
    in_cluster: bool = True,
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
    mesh_retries: bool = False,
) -> ResolvedMCPServer:
    """How the runtime reaches ``server``. Secret values are never copied: headers and env
    from Secrets are referenced by the file their key is mounted at. ``mesh_retries``
    (hosted servers only) tells the runtime that the mesh retries this hop."""
    spec = server.spec
    name = server.metadata.name
    if spec.url is not None:
        return ResolvedMCPServer(
            name=name,
            transport=MCPTransport.STREAMABLE_HTTP,
            url=spec.url,
            endpoints=list(spec.endpoints),
            header_files={h.name: secret_file(secrets_dir, h.secret_key_ref) for h in spec.headers},
            timeouts=spec.timeouts,
            allowed_tools=allowed_tools,
        )
    if spec.hosted is not None:
        if not in_cluster:
            raise UnresolvableError(
                f"MCPServer {name!r} is hosted (spec.hosted): only the operator can run it; "
                "locally, give it a url or a stdio command instead"
            )
        return ResolvedMCPServer(
            name=name,
            transport=MCPTransport.STREAMABLE_HTTP,
            url=hosted_mcp_url(server, cluster_domain),
            timeouts=spec.timeouts,
            allowed_tools=allowed_tools,
            mesh_retries=mesh_retries,
        )
    assert spec.stdio is not None
    env = {e.name: e.value for e in spec.stdio.env if e.value is not None}
    env_files = {
        e.name: secret_file(secrets_dir, e.secret_key_ref)
        for e in spec.stdio.env
        if e.secret_key_ref is not None
    }
    return ResolvedMCPServer(
        name=name,
        transport=MCPTransport.STDIO,
        command=spec.stdio.command,
        args=list(spec.stdio.args),
        env=env,
        env_files=env_files,
        timeouts=spec.timeouts,
        allowed_tools=allowed_tools,
    )
