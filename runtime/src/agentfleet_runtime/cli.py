"""The ``agentfleet`` command line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, Literal

import typer
import uvicorn

from agentfleet_runtime import __version__
from agentfleet_runtime.gc_tuning import GcSettings, tune_for_serving

app = typer.Typer(
    name="agentfleet",
    help="agentfleet: run LLM agents with MCP tools, locally or on Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
)
crds_app = typer.Typer(help="Custom resource definitions.", no_args_is_help=True)
mcp_app = typer.Typer(help="MCP servers bundled with agentfleet.", no_args_is_help=True)
app.add_typer(crds_app, name="crds")
app.add_typer(mcp_app, name="mcp")

Port = Annotated[int, typer.Option("--port", "-p", help="TCP port to listen on.")]
Host = Annotated[str, typer.Option("--host", help="Interface to bind.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentfleet {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """agentfleet command line."""


@app.command()
def dev(
    manifests: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            "-f",
            help="Agent/MCPServer/ResiliencePolicy manifests (files or folders), the same "
            "YAML kubectl apply takes. Without -f, a built-in demo agent is served.",
            exists=True,
        ),
    ] = None,
    port: Port = 8000,
    host: Host = "127.0.0.1",
    log_format: Annotated[Literal["console", "json"], typer.Option(help="Log format.")] = "console",
) -> None:
    """Run the runtime locally with embedded defaults: the fake (offline) model when no
    API key is set, and the bundled demo MCP server."""
    from agentfleet_crds.manifests import ManifestError
    from agentfleet_runtime.config import RuntimeSettings
    from agentfleet_runtime.dev import build_dev_app
    from agentfleet_runtime.loader import ConfigError
    from agentfleet_runtime.observability.logging import configure_logging

    settings = RuntimeSettings(host=host, port=port, log_format=log_format)
    configure_logging(settings.log_level, settings.log_format)
    serving = asyncio.Event()
    try:
        application, plan = build_dev_app(settings, manifests or [], serving)
    except (ManifestError, ConfigError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    base = f"http://{host}:{port}"
    typer.secho(f"agentfleet dev {__version__} — serving on {base}", bold=True, err=True)
    for agent in plan.config.agents:
        model = agent.spec.model
        tools = ", ".join(s.name for s in agent.mcp_servers) or "none"
        typer.echo(
            f"  agent {agent.name}: model {model.provider.value}/{model.name}, "
            f"MCP servers: {tools}",
            err=True,
        )
    for notice in plan.notices:
        typer.secho(f"  NOTE: {notice}", fg="yellow", err=True)
    typer.echo(f"  API docs: {base}/docs   health: {base}/healthz/ready", err=True)
    _serve(application, host, port, serving, settings.gc)


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Runtime config rendered by the operator (AGENTFLEET_CONFIG_FILE).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    port: Port = 8000,
    host: Host = "0.0.0.0",
) -> None:
    """Run the production runtime: agents from the operator-rendered config, JSON logs,
    read-only agent definitions (cluster mode)."""
    from agentfleet_runtime.app import create_app
    from agentfleet_runtime.config import RuntimeSettings
    from agentfleet_runtime.loader import ConfigError, load_runtime_config
    from agentfleet_runtime.observability.logging import configure_logging

    settings = RuntimeSettings(host=host, port=port, cluster_mode=True)
    if config is not None:
        settings = settings.model_copy(update={"config_file": config})
    configure_logging(settings.log_level, settings.log_format)
    if settings.config_file is None:
        typer.secho("error: --config (or AGENTFLEET_CONFIG_FILE) is required", err=True)
        raise typer.Exit(2)
    try:
        runtime_config = load_runtime_config(settings.config_file)
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    _serve(create_app(settings, runtime_config=runtime_config), host, port, None, settings.gc)


def _serve(
    application: object,
    host: str,
    port: int,
    serving: asyncio.Event | None,
    gc_settings: GcSettings,
) -> None:
    config = uvicorn.Config(
        application,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        ws="websockets-sansio",
        # permessage-deflate keeps a zlib state per socket (~60 KiB): with thousands of
        # mostly idle connections and small JSON frames it costs more than it saves.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=25,
    )
    server = _DrainingServer(config, application)

    async def run() -> None:
        server.loop = asyncio.get_running_loop()
        task = asyncio.create_task(server.serve())
        # uvicorn has no started event to await; poll its flag.
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if server.started:
            tune_for_serving(gc_settings)
        if serving is not None:
            serving.set()
        await task

    asyncio.run(run(), loop_factory=_loop_factory())
    if not server.started:
        sys.exit(1)


class _DrainingServer(uvicorn.Server):
    """On the first SIGTERM/SIGINT, drain before stopping: readiness false, WebSocket
    clients closed with 1012, running turns finished or handed over (the app's
    ``Drainer``); then uvicorn's own graceful shutdown. A second signal forces the exit."""

    def __init__(self, config: uvicorn.Config, application: object) -> None:
        super().__init__(config)
        self._application = application
        self._draining = False
        self.loop: asyncio.AbstractEventLoop | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drainer = getattr(getattr(self._application, "state", None), "drainer", None)
        if self._draining or drainer is None or self.should_exit or self.loop is None:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        self._captured_signals.append(sig)  # re-raised after shutdown, as uvicorn does
        self.loop.call_soon_threadsafe(self._drain, drainer)

    def _drain(self, drainer: Any) -> None:
        task: asyncio.Task[None] = drainer.drain()

        def stop(_: asyncio.Task[None]) -> None:
            self.should_exit = True

        task.add_done_callback(stop)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it; Linux/macOS), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@app.command()
def chat(
    url: Annotated[
        str, typer.Option("--url", "-u", envvar="AGENTFLEET_URL", help="The runtime's base URL.")
    ] = "http://127.0.0.1:8000",
    agent: Annotated[str, typer.Option("--agent", "-a", help="Agent to talk to.")] = "demo",
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Continue this session.")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="AGENTFLEET_TOKEN", help="Bearer token.")
    ] = None,
) -> None:
    """A terminal conversation with an agent over WebSocket, tokens streamed as they
    arrive (uses the agentfleet client SDK; reconnects and resumes by itself)."""
    from agentfleet.chat import run_chat
    from agentfleet.errors import AgentfleetClientError

    try:
        asyncio.run(run_chat(url, agent=agent, session_id=session, token=token))
    except AgentfleetClientError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        pass


@app.command("dependency-map")
def dependency_map(
    url: Annotated[
        str, typer.Option("--url", "-u", envvar="AGENTFLEET_URL", help="The runtime's base URL.")
    ] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="AGENTFLEET_TOKEN", help="Bearer token (admin scope)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the page here (default: stdout).")
    ] = None,
) -> None:
    """Print a running runtime's service dependency map as a Markdown page (a Mermaid
    graph and a table: health, breaker, recent calls, dependent agents)."""
    import httpx2

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx2.get(
            f"{url.rstrip('/')}/api/v1/admin/dependencies",
            params={"format": "markdown"},
            headers=headers,
            timeout=10,
        )
    except httpx2.HTTPError as exc:
        typer.secho(f"error: cannot reach {url}: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    if response.status_code != 200:
        typer.secho(f"error: {response.status_code} {response.text}", fg="red", err=True)
        raise typer.Exit(1)
    if output is None:
        typer.echo(response.text, nl=False)
    else:
        output.write_text(response.text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Manifest files or folders.", exists=True)],
) -> None:
    """Check agentfleet manifests against the models (the CRD schema's rules) offline."""
    from agentfleet_crds.manifests import ManifestError, load_manifest_files

    try:
        resources = load_manifest_files(files)
    except ManifestError as exc:
        typer.secho(f"invalid: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    for resource in resources:
        typer.echo(f"ok: {resource.kind}/{resource.metadata.name}")


@crds_app.command("generate")
def crds_generate(
    output_dir: Annotated[Path, typer.Option(help="Where to write the CRD YAML.")] = Path(
        "crds/manifests"
    ),
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the committed YAML is stale.")
    ] = False,
) -> None:
    """Generate the CRD YAML from the Pydantic models."""
    from agentfleet_crds.generate import generate_crds

    changed = generate_crds(output_dir, check)
    if check and changed:
        typer.secho(
            "stale CRDs: " + ", ".join(map(str, changed)) + " (run: agentfleet crds generate)",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)
    for path in changed:
        typer.echo(f"wrote {path}")


@mcp_app.command("demo")
def mcp_demo(
    transport: Annotated[
        Literal["stdio", "streamable-http"], typer.Option(help="How to speak MCP.")
    ] = "stdio",
    port: Port = 8765,
    host: Host = "127.0.0.1",
) -> None:
    """Run the bundled demo MCP server (calculate, current_time, convert_units, ...)."""
    from agentfleet_runtime.tools.mcp.demo_server import run_demo_server

    run_demo_server(transport, host=host, port=port)


@mcp_app.command(
    "bridge",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def mcp_bridge(
    command: Annotated[list[str], typer.Argument(help="The stdio server: -- COMMAND [ARGS...]")],
    port: Port = 8080,
    host: Host = "127.0.0.1",
    path: Annotated[str, typer.Option(help="HTTP path of the MCP endpoint.")] = "/mcp",
) -> None:
    """Serve a stdio-only MCP server over streamable HTTP (what hosted stdio MCPServers
    run; also available as the standalone `mcp-bridge` command)."""
    from agentfleet_runtime.tools.mcp.bridge import main as bridge_main

    bridge_main(["--host", host, "--port", str(port), "--path", path, "--", *command])


@app.command("fake-provider")
def fake_provider(port: Port = 8090, host: Host = "127.0.0.1") -> None:
    """Serve the fake model provider (OpenAI and Anthropic wire formats) standalone."""
    from agentfleet_runtime.providers.fake import FakeScript, create_fake_provider_app

    uvicorn.run(create_fake_provider_app(FakeScript()), host=host, port=port, log_level="warning")
