"""The real kopf operator against the emulated API over HTTP: what the first slice did not
do — dependency changes re-render Agents, drift is corrected, hosted MCPServers,
SecretBindings, ResiliencePolicy status, mesh objects, Events."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from agentfleet_operator.kube import KubeClient
from agentfleet_operator.kube.resources import (
    AGENTS,
    CONFIG_MAPS,
    DEPLOYMENTS,
    EVENTS,
    MCP_SERVERS,
    RESILIENCE_POLICIES,
    SECRET_BINDINGS,
    SECRETS,
    SERVICES,
    ApiResource,
)
from agentfleet_operator.testing.emulator import KubernetesAPIEmulator
from agentfleet_operator.testing.operator import running_operator
from agentfleet_operator.testing.waiting import eventually

NS = "team-a"
API = "agentfleet.dev/v1alpha1"
VIRTUAL_SERVICES = ApiResource("networking.istio.io", "v1", "virtualservices", "VirtualService")
DESTINATION_RULES = ApiResource("networking.istio.io", "v1", "destinationrules", "DestinationRule")


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def agent(name: str, tools: tuple[str, ...] = (), **spec: Any) -> dict[str, Any]:
    return resource(
        "Agent",
        name,
        {
            "model": {"provider": "fake", "name": "m"},
            "tools": [{"mcpServerRef": {"name": t}} for t in tools],
            **spec,
        },
    )


def condition(obj: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any]:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


async def config_of(kube: KubeClient, name: str) -> dict[str, Any]:
    found = await kube.get_or_none(CONFIG_MAPS, NS, f"{name}-config")
    if found is None:
        return {}
    agents = yaml.safe_load(found["data"]["config.yaml"])["agents"]
    return dict(agents[0]) if agents else {}


async def wait_config(kube: KubeClient, name: str, check: Any, what: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        config = await config_of(kube, name)
        return config if config and check(config) else None

    return await eventually(probe, within=5, what=what)


async def test_dependency_changes_rerender_agents(
    emulator: KubernetesAPIEmulator, kube: KubeClient
) -> None:
    # Retries are slow here: only the index can make these changes show up in time.
    async with running_operator(emulator, kube, dependency_retry_seconds=60):
        await kube.create(
            AGENTS, NS, agent("helper", ("search",), resiliencePolicyRef={"name": "p"})
        )

        async def blocked() -> dict[str, Any] | None:
            found = await kube.get(AGENTS, NS, "helper")
            return found if condition(found).get("reason") == "MCPServerNotFound" else None

        await eventually(blocked, what="MCPServerNotFound")
        await kube.create(
            MCP_SERVERS, NS, resource("MCPServer", "search", {"url": "https://a/mcp"})
        )

        async def policy_missing() -> dict[str, Any] | None:
            found = await kube.get(AGENTS, NS, "helper")
            reason = condition(found).get("reason")
            return found if reason == "ResiliencePolicyNotFound" else None

        await eventually(policy_missing, what="the next missing reference")
        policy = {"llm": {"timeoutSeconds": 9}}
        await kube.create(RESILIENCE_POLICIES, NS, resource("ResiliencePolicy", "p", policy))
        config = await wait_config(kube, "helper", lambda c: c, "the first config")
        assert config["mcpServers"][0]["url"] == "https://a/mcp"
        assert config["resilience"]["llm"]["timeoutSeconds"] == 9

        await kube.patch(MCP_SERVERS, NS, "search", {"spec": {"url": "https://b/mcp"}})
        await wait_config(
            kube,
            "helper",
            lambda c: c["mcpServers"][0]["url"] == "https://b/mcp",
            "the new MCPServer URL",
        )
        await kube.patch(RESILIENCE_POLICIES, NS, "p", {"spec": {"llm": {"timeoutSeconds": 4}}})
        await wait_config(
            kube,
            "helper",
            lambda c: c["resilience"]["llm"]["timeoutSeconds"] == 4,
            "the new policy",
        )

        async def policy_status() -> dict[str, Any] | None:
            found = await kube.get(RESILIENCE_POLICIES, NS, "p")
            status = found.get("status") or {}
            return found if status.get("agents") == 1 and condition(found) else None

        rp = await eventually(policy_status, what="the policy's status")
        assert condition(rp)["status"] == "True"
        assert rp["status"]["mesh"] == "none"

        # Deleting the MCPServer blocks the Agent again (its pods keep the last config).
        await kube.delete(MCP_SERVERS, NS, "search")
        await eventually(blocked, what="MCPServerNotFound after the deletion")


async def test_drift_is_corrected(emulator: KubernetesAPIEmulator, kube: KubeClient) -> None:
    async with running_operator(emulator, kube, resync_seconds=3600):
        await kube.create(AGENTS, NS, agent("helper"))
        original = await wait_config(kube, "helper", lambda c: c, "the config")
        service = await kube.get(SERVICES, NS, "helper")

        await kube.delete(SERVICES, NS, "helper")

        async def recreated() -> dict[str, Any] | None:
            found = await kube.get_or_none(SERVICES, NS, "helper")
            uid = service["metadata"]["uid"]
            return found if found and found["metadata"]["uid"] != uid else None

        await eventually(recreated, what="the deleted Service back", within=20)

        config_map = await kube.get(CONFIG_MAPS, NS, "helper-config")
        await kube.patch(
            CONFIG_MAPS, NS, "helper-config", {"data": {"config.yaml": "agents: []\n"}}
        )
        await wait_config(kube, "helper", lambda c: c == original, "the ConfigMap restored")
        assert config_map["data"]["config.yaml"] != "agents: []\n"

        await kube.patch(
            DEPLOYMENTS, NS, "helper", {"spec": {"template": {"spec": {"containers": []}}}}
        )

        async def containers_back() -> dict[str, Any] | None:
            found = await kube.get(DEPLOYMENTS, NS, "helper")
            return found if found["spec"]["template"]["spec"]["containers"] else None

        await eventually(containers_back, what="the Deployment's containers restored", within=20)

        async def drift_events() -> list[dict[str, Any]] | None:
            events = await kube.list_objects(EVENTS, NS)
            found = [e for e in events if e["reason"] == "DriftCorrected"]
            return found or None

        events = await eventually(drift_events, what="a DriftCorrected Event", within=20)
        assert events[0]["involvedObject"]["kind"] == "Agent"
        assert events[0]["type"] == "Normal"


async def test_resync_timer_corrects_unannounced_drift(
    emulator: KubernetesAPIEmulator, kube: KubeClient
) -> None:
    async with running_operator(emulator, kube, resync_seconds=0.5) as context:
        await kube.create(AGENTS, NS, agent("helper"))
        await wait_config(kube, "helper", lambda c: c, "the config")
        # An edit the operator did not see as drift (its own echo): only the timer fixes it.
        edited = await kube.patch(
            CONFIG_MAPS, NS, "helper-config", {"data": {"config.yaml": "agents: []\n"}}
        )
        context.written[("ConfigMap", NS, "helper-config")] = edited["metadata"]["resourceVersion"]
        await wait_config(kube, "helper", lambda c: c.get("name") == "helper", "the resync")


@pytest.mark.emulator(ready_deployments=True)
async def test_hosted_mcp_server(emulator: KubernetesAPIEmulator, kube: KubeClient) -> None:
    async with running_operator(emulator, kube):
        spec = {
            "hosted": {
                "image": "ghcr.io/example/files-mcp:1",
                "transport": "stdio",
                "command": ["files-mcp"],
                "args": ["--root", "/data"],
                "port": 9000,
                "env": [{"name": "TOKEN", "secretKeyRef": {"name": "files", "key": "token"}}],
            }
        }
        await kube.create(MCP_SERVERS, NS, resource("MCPServer", "files", spec))
        await kube.create(AGENTS, NS, agent("helper", ("files",)))

        async def ready() -> dict[str, Any] | None:
            found = await kube.get(MCP_SERVERS, NS, "files")
            return found if condition(found).get("status") == "True" else None

        server = await eventually(ready, what="the hosted server Ready")
        url = "http://files-mcp.team-a.svc.cluster.local:9000/mcp"
        assert server["status"]["url"] == url
        assert server["status"]["readyReplicas"] == 1
        deployment = await kube.get(DEPLOYMENTS, NS, "files-mcp")
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"][:1] == ["/opt/agentfleet-bridge/mcp-bridge"]
        assert container["command"][-4:] == ["--", "files-mcp", "--root", "/data"]
        assert pod["initContainers"][0]["image"] == "ghcr.io/agentfleet/mcp-bridge:0.1.0"
        assert container["env"] == [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "files", "key": "token"}}}
        ]
        service = await kube.get(SERVICES, NS, "files-mcp")
        assert service["spec"]["ports"][0]["port"] == 9000
        config = await wait_config(kube, "helper", lambda c: c, "the agent's config")
        assert config["mcpServers"][0]["url"] == url

        async def agent_ready() -> dict[str, Any] | None:
            found = await kube.get(AGENTS, NS, "helper")
            return found if condition(found).get("status") == "True" else None

        await eventually(agent_ready, what="the Agent Ready (emulated Deployment controller)")

        # No longer hosted: what it ran is deleted.
        await kube.patch(
            MCP_SERVERS, NS, "files", {"spec": {"hosted": None, "url": "https://files/mcp"}}
        )

        async def gone() -> bool:
            deployment = await kube.get_or_none(DEPLOYMENTS, NS, "files-mcp")
            return deployment is None and await kube.get_or_none(SERVICES, NS, "files-mcp") is None

        await eventually(gone, what="the hosted Deployment and Service removed")


async def test_secret_bindings(emulator: KubernetesAPIEmulator, kube: KubeClient) -> None:
    async with running_operator(emulator, kube):
        await kube.create(AGENTS, NS, agent("helper"))
        k8s = {
            "provider": "kubernetes",
            "agents": ["helper", "absent"],
            "secrets": [
                {"name": "crm-token", "kubernetes": {"secretName": "crm", "key": "token"}},
            ],
        }
        await kube.create(SECRET_BINDINGS, NS, resource("SecretBinding", "crm", k8s))
        aws = {
            "provider": "aws",
            "agents": ["helper"],
            "secrets": [
                {"name": "llm-key", "remote": {"key": "arn:aws:secretsmanager:x", "property": "k"}}
            ],
        }
        await kube.create(SECRET_BINDINGS, NS, resource("SecretBinding", "cloud", aws))

        def bound(config: dict[str, Any]) -> bool:
            return len(config.get("secrets") or []) == 2

        config = await wait_config(kube, "helper", bound, "both bindings in the config")
        by_name = {s["name"]: s for s in config["secrets"]}
        assert by_name["crm-token"]["file"] == "/var/run/agentfleet/secrets/crm/token"
        assert by_name["crm-token"]["provider"] == "kubernetes"
        assert by_name["llm-key"]["key"] == "arn:aws:secretsmanager:x"
        assert by_name["llm-key"]["property"] == "k"
        assert "file" not in by_name["llm-key"]

        async def mounted() -> dict[str, Any] | None:
            found = await kube.get_or_none(DEPLOYMENTS, NS, "helper")
            pod = (found or {}).get("spec", {}).get("template", {}).get("spec", {})
            has = any(
                v.get("secret", {}).get("secretName") == "crm" for v in pod.get("volumes", [])
            )
            return pod if has else None

        pod = await eventually(mounted, what="the Secret volume")
        volumes = {v["secret"]["secretName"]: v for v in pod["volumes"] if "secret" in v}
        assert volumes["crm"]["secret"]["items"] == [{"key": "token", "path": "token"}]
        mounts = pod["containers"][0]["volumeMounts"]
        mount = next(m for m in mounts if m["mountPath"] == "/var/run/agentfleet/secrets/crm")
        assert "subPath" not in mount  # rotation reaches the file without a restart

        async def status_of(name: str, reason: str) -> dict[str, Any] | None:
            found = await kube.get(SECRET_BINDINGS, NS, name)
            return found if condition(found).get("reason") == reason else None

        missing = await eventually(lambda: status_of("crm", "SecretNotFound"), what="missing")
        assert missing["status"]["missing"] == ["crm-token"]
        assert missing["status"]["agents"] == ["helper"]
        cloud = await eventually(lambda: status_of("cloud", "Delegated"), what="delegated")
        assert cloud["status"]["resolved"] == ["llm-key"]

        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "crm"}}
        await kube.create(SECRETS, NS, {**secret, "data": {"token": "dG9rZW4="}})
        resolved = await eventually(lambda: status_of("crm", "Resolved"), what="resolved")
        assert resolved["status"]["resolved"] == ["crm-token"]
        assert resolved["status"]["missing"] == []

        # Unbinding the agent removes the secret from its config and its pods.
        await kube.patch(SECRET_BINDINGS, NS, "crm", {"spec": {"agents": ["absent"]}})
        await wait_config(
            kube, "helper", lambda c: len(c["secrets"]) == 1, "the unbound secret gone"
        )

        async def unmounted() -> bool:
            return await mounted() is None

        await eventually(unmounted, what="the Secret volume removed")


@pytest.mark.emulator(ready_deployments=True)
async def test_istio_is_detected_and_rendered(
    emulator: KubernetesAPIEmulator, kube: KubeClient
) -> None:
    emulator.declare("networking.istio.io", "v1", "virtualservices", kind="VirtualService")
    emulator.declare("networking.istio.io", "v1", "destinationrules", kind="DestinationRule")
    async with running_operator(emulator, kube) as context:

        async def detected() -> bool:
            return context.mesh.mesh == "istio"

        await eventually(detected, what="Istio detected at login")
        mesh_policy = {"mesh": {"retries": "mesh", "attempts": 3, "perTryTimeoutSeconds": 5}}
        await kube.create(
            RESILIENCE_POLICIES, NS, resource("ResiliencePolicy", "mesh", mesh_policy)
        )
        hosted = {"hosted": {"image": "i"}, "resiliencePolicyRef": {"name": "mesh"}}
        await kube.create(MCP_SERVERS, NS, resource("MCPServer", "tools", hosted))
        await kube.create(AGENTS, NS, agent("helper", ("tools",)))

        config = await wait_config(kube, "helper", lambda c: c, "the config")
        assert config["mcpServers"][0]["meshRetries"] is True  # the mesh retries: not both

        async def service_of(name: str) -> dict[str, Any] | None:
            return await kube.get_or_none(VIRTUAL_SERVICES, NS, name)

        agent_vs = await eventually(lambda: service_of("helper"), what="the agent's VS")
        default = agent_vs["spec"]["http"][-1]
        assert default["retries"] == {"attempts": 0}  # the agent's policy: in-process
        mcp_vs = await eventually(lambda: service_of("tools-mcp"), what="the server's VS")
        retried = mcp_vs["spec"]["http"][-1]["retries"]
        assert retried["attempts"] == 3
        assert mcp_vs["spec"]["http"][0]["retries"] == {"attempts": 0}  # the SSE stream
        assert await kube.get_or_none(DESTINATION_RULES, NS, "tools-mcp") is not None

        # Back to in-process retries: the mesh stops retrying, the runtime starts.
        await kube.patch(
            RESILIENCE_POLICIES, NS, "mesh", {"spec": {"mesh": {"retries": "inProcess"}}}
        )
        await wait_config(
            kube,
            "helper",
            lambda c: c["mcpServers"][0]["meshRetries"] is False,
            "meshRetries off",
        )

        async def not_retried() -> dict[str, Any] | None:
            found = await kube.get(VIRTUAL_SERVICES, NS, "tools-mcp")
            return found if found["spec"]["http"][-1]["retries"] == {"attempts": 0} else None

        await eventually(not_retried, what="mesh retries off")

        # A deleted mesh object is drift too.
        await kube.delete(VIRTUAL_SERVICES, NS, "helper")
        await eventually(lambda: service_of("helper"), what="the VS restored")


async def test_events_for_transitions(emulator: KubernetesAPIEmulator, kube: KubeClient) -> None:
    async with running_operator(emulator, kube):
        await kube.create(AGENTS, NS, agent("orphan", ("missing",)))

        async def warning() -> list[dict[str, Any]] | None:
            events = await kube.list_objects(EVENTS, NS)
            found = [e for e in events if e["reason"] == "MCPServerNotFound"]
            return found or None

        (event,) = await eventually(warning, what="a MCPServerNotFound Event")
        assert event["type"] == "Warning"
        assert event["involvedObject"]["name"] == "orphan"
        assert event["source"]["component"] == "agentfleet-operator"


async def test_mcp_servers_are_probed_and_a_dead_one_never_stalls_the_operator(
    emulator: KubernetesAPIEmulator, kube: KubeClient
) -> None:
    import asyncio
    import contextlib

    from starlette.applications import Starlette
    from starlette.routing import Mount

    from agentfleet_runtime.testing.servers import running_server
    from agentfleet_runtime.tools.mcp.demo_server import demo_server_asgi

    demo = demo_server_asgi()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> Any:
        async with demo.lifespan():
            yield

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)  # accepts the connection, never says a word
        writer.close()

    app = Starlette(routes=[Mount("/mcp", app=demo.app)], lifespan=lifespan)
    dead = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    dead_port = dead.sockets[0].getsockname()[1]
    try:
        async with (
            running_server(app) as live,
            running_operator(emulator, kube, mcp_probe_timeout_seconds=1.0),
        ):
            dead_url = f"http://127.0.0.1:{dead_port}/mcp"
            await kube.create(MCP_SERVERS, NS, resource("MCPServer", "dead", {"url": dead_url}))
            live_url = f"{live.url}/mcp/"
            await kube.create(MCP_SERVERS, NS, resource("MCPServer", "demo", {"url": live_url}))
            await kube.create(AGENTS, NS, agent("helper", ("dead", "demo")))

            async def listed(name: str) -> dict[str, Any] | None:
                found = await kube.get(MCP_SERVERS, NS, name)
                return found if condition(found, "ToolsListed") else None

            # The agent is reconciled while the dead server's probe is still hanging.
            await wait_config(kube, "helper", lambda c: len(c["mcpServers"]) == 2, "config")
            demo_server = await eventually(lambda: listed("demo"), what="the demo's tools")
            assert "calculate" in demo_server["status"]["tools"]
            # each tool's input-schema hash, as the runtime computes it (what pins pin)
            from agentfleet_crds.contract import ResolvedMCPServer
            from agentfleet_crds.toolschema import input_schema_hash
            from agentfleet_crds.v1alpha1.mcpserver import MCPTransport
            from agentfleet_runtime.tools.mcp.client import MCPToolServer

            resolved = ResolvedMCPServer(
                name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=live_url
            )
            async with MCPToolServer(resolved) as probe:
                expected = {
                    t.name: input_schema_hash(t.input_schema) for t in await probe.list_tools()
                }
            schemas = {
                s["name"]: s["inputSchemaHash"] for s in demo_server["status"]["toolSchemas"]
            }
            assert schemas == expected
            assert sorted(schemas) == demo_server["status"]["tools"]

            # Agents pinning the demo's tools: a matching pin is fine; a stale one (the
            # server lists another schema) or a vanished tool flags the Agent Degraded.
            def pinned(name: str, pins: dict[str, str]) -> dict[str, Any]:
                ref = {
                    "mcpServerRef": {"name": "demo"},
                    "pinnedTools": [{"name": t, "inputSchemaHash": h} for t, h in pins.items()],
                }
                return resource(
                    "Agent", name, {"model": {"provider": "fake", "name": "m"}, "tools": [ref]}
                )

            stale = "sha256:" + "0" * 64
            await kube.create(AGENTS, NS, pinned("exact", {"calculate": schemas["calculate"]}))
            await kube.create(AGENTS, NS, pinned("stale", {"calculate": stale, "vanished": stale}))

            async def degraded(name: str) -> dict[str, Any] | None:
                found = await kube.get(AGENTS, NS, name)
                return found if condition(found, "Degraded").get("reason") else None

            exact = await eventually(lambda: degraded("exact"), what="the exact pin's status")
            assert condition(exact, "Degraded")["status"] == "False"
            flagged = await eventually(lambda: degraded("stale"), what="the stale pin's status")
            flag = condition(flagged, "Degraded")
            assert (flag["status"], flag["reason"]) == ("True", "ToolSchemaChanged")
            assert f"demo/calculate is listed as {schemas['calculate']}" in flag["message"]
            assert "demo/vanished is no longer listed" in flag["message"]
            assert condition(demo_server, "ToolsListed")["status"] == "True"
            assert condition(demo_server)["status"] == "True"
            dead_server = await eventually(lambda: listed("dead"), what="the probe timing out")
            assert condition(dead_server, "ToolsListed")["reason"] == "ProbeTimedOut"
            assert condition(dead_server)["status"] == "True"  # usable: a status, not a block
    finally:
        dead.close()


def test_a_servers_new_tool_schemas_requeue_the_agents_pinning_them() -> None:
    from agentfleet_operator.handlers.triggers import _tool_schemas_changed

    memo: Any = {}
    body = {"status": {}}
    assert not _tool_schemas_changed(None, body, memo)  # the initial listing
    listed = {"status": {"toolSchemas": [{"name": "calc", "inputSchemaHash": "sha256:a"}]}}
    assert _tool_schemas_changed("MODIFIED", listed, memo)  # the probe listed them
    assert not _tool_schemas_changed("MODIFIED", listed, memo)  # the same again
    changed = {"status": {"toolSchemas": [{"name": "calc", "inputSchemaHash": "sha256:b"}]}}
    assert _tool_schemas_changed("MODIFIED", changed, memo)
