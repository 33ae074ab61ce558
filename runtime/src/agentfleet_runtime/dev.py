"""``agentfleet dev``: the runtime on a laptop with embedded defaults.

One process serves, on one port:

* the runtime API (``/api/v1``), with agents from ``-f`` manifests or a built-in ``demo``
  agent;
* the fake model provider at ``/fake-llm`` (the offline model, used whenever no provider
  API key is configured);
* the bundled demo MCP server at ``/mcp/demo`` (streamable HTTP), known as MCPServer
  ``demo``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from starlette.routing import Mount

from agentfleet_crds.contract import AgentConfig, ResolvedMCPServer, RuntimeConfig
from agentfleet_crds.manifests import load_manifest_files
from agentfleet_crds.v1alpha1 import AgentSpec, MCPTransport, ModelProviderName, ModelSpec
from agentfleet_crds.v1alpha1.agent import AgentToolRef
from agentfleet_crds.v1alpha1.common import LocalObjectReference
from agentfleet_runtime.app import create_app
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.loader import config_from_manifests
from agentfleet_runtime.providers.fake import FakeScript, create_fake_provider_app
from agentfleet_runtime.tools.mcp.demo_server import demo_server_asgi

log = logging.getLogger(__name__)

FAKE_PREFIX = "/fake-llm"
DEMO_MCP_PREFIX = "/mcp/demo"
DEMO_SYSTEM_PROMPT = (
    "You are agentfleet's demo agent. Use the tools when they help: calculate for "
    "arithmetic, current_time for dates and times, convert_units for units, text_stats for "
    "text, remember/recall for notes. Answer briefly."
)
OFFLINE_MODEL = "agentfleet-offline"


@dataclass
class DevPlan:
    """What ``agentfleet dev`` will serve, and what it tells the user about it."""

    config: RuntimeConfig
    mcp_servers: dict[str, ResolvedMCPServer]
    notices: list[str] = field(default_factory=list)


def _key_available(spec: ModelSpec, settings: RuntimeSettings) -> bool:
    if spec.provider is ModelProviderName.FAKE:
        return True
    if spec.api_key_secret_ref is not None:
        ref = spec.api_key_secret_ref
        return (settings.secrets_dir / ref.name / ref.key).is_file()
    if spec.provider is ModelProviderName.ANTHROPIC:
        return settings.keys.anthropic_api_key is not None
    if spec.provider is ModelProviderName.OPENAI and spec.base_url:
        return True  # OpenAI-compatible local servers (Ollama, vLLM) often need no key
    return settings.keys.openai_api_key is not None


def _default_model(settings: RuntimeSettings) -> ModelSpec:
    if settings.keys.anthropic_api_key is not None:
        return ModelSpec(provider=ModelProviderName.ANTHROPIC, name="claude-sonnet-4-5")
    if settings.keys.openai_api_key is not None:
        return ModelSpec(provider=ModelProviderName.OPENAI, name="gpt-4.1-mini")
    return ModelSpec(provider=ModelProviderName.FAKE, name=OFFLINE_MODEL)


def plan_dev(settings: RuntimeSettings, manifests: Sequence[Path], base_url: str) -> DevPlan:
    demo = ResolvedMCPServer(
        name="demo",
        transport=MCPTransport.STREAMABLE_HTTP,
        url=f"{base_url}{DEMO_MCP_PREFIX}/",
    )
    notices: list[str] = []
    if manifests:
        resources = load_manifest_files(manifests)
        config, servers = config_from_manifests(
            resources, secrets_dir=str(settings.secrets_dir), builtin_servers={"demo": demo}
        )
    else:
        spec = AgentSpec(
            description="The built-in demo agent of agentfleet dev",
            system_prompt=DEMO_SYSTEM_PROMPT,
            model=_default_model(settings),
            tools=[AgentToolRef(mcp_server_ref=LocalObjectReference(name="demo"))],
        )
        config = RuntimeConfig(agents=[AgentConfig(name="demo", spec=spec, mcp_servers=[demo])])
        servers = {"demo": demo}
    agents: list[AgentConfig] = []
    for agent in config.agents:
        model = agent.spec.model
        if not _key_available(model, settings):
            notices.append(
                f"agent {agent.name!r}: no API key for {model.provider.value} "
                f"(set {model.provider.value.upper()}_API_KEY or the secret file): "
                "using the OFFLINE FAKE MODEL instead"
            )
            fake = ModelSpec(provider=ModelProviderName.FAKE, name=OFFLINE_MODEL)
            agent = agent.model_copy(update={"spec": agent.spec.model_copy(update={"model": fake})})
        elif model.provider is ModelProviderName.FAKE:
            notices.append(
                f"agent {agent.name!r}: OFFLINE FAKE MODEL (no LLM is called; set "
                "ANTHROPIC_API_KEY or OPENAI_API_KEY to use a real one)"
            )
        agents.append(agent)
    return DevPlan(config=RuntimeConfig(agents=agents), mcp_servers=servers, notices=notices)


def build_dev_app(
    settings: RuntimeSettings,
    manifests: Sequence[Path],
    serving: asyncio.Event | None = None,
) -> tuple[FastAPI, DevPlan]:
    """The dev app; ``serving`` is set once the server accepts connections."""
    base_url = f"http://{_connect_host(settings.host)}:{settings.port}"
    settings = settings.model_copy(update={"fake_provider_url": base_url + FAKE_PREFIX})
    plan = plan_dev(settings, manifests, base_url)
    demo_app, demo_lifespan = demo_server_asgi()

    async def wait_serving() -> None:
        if serving is not None:
            await serving.wait()

    app = create_app(
        settings,
        runtime_config=plan.config,
        mcp_servers=plan.mcp_servers,
        routes=[
            Mount(FAKE_PREFIX, app=create_fake_provider_app(FakeScript())),
            Mount(DEMO_MCP_PREFIX, app=demo_app),
        ],
        lifespan_hooks=[demo_lifespan],
        serving=wait_serving,
    )
    return app, plan


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
