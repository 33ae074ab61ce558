"""The operator's own HTTP endpoints, up from process start (a follower waiting for the
leader Lease must look alive too, or Kubernetes would restart it forever):

* ``GET /healthz`` — liveness: the event loop answers. 200 with the replica's role.
* ``GET /readyz`` — 200 once this replica is a ready leader (kopf running, API client
  connected) or a standby follower; 503 while starting.
* ``GET /metrics`` — Prometheus text format (:mod:`agentfleet_operator.observability`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agentfleet_operator.observability import OperatorMetrics


@dataclass
class HealthState:
    role: str = "starting"  # starting | standby | leader | stopping
    ready: bool = False
    details: dict[str, Any] = field(default_factory=dict)


class HealthServer:
    def __init__(self, address: str, metrics: OperatorMetrics, state: HealthState) -> None:
        host, _, port = address.rpartition(":")
        self.host = host or "0.0.0.0"
        self.port = int(port)
        self.metrics = metrics
        self.state = state
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._live)
        app.router.add_get("/readyz", self._ready)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _body(self) -> dict[str, Any]:
        return {"role": self.state.role, "ready": self.state.ready, **self.state.details}

    async def _live(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **self._body()})

    async def _ready(self, _: web.Request) -> web.Response:
        ready = self.state.ready or self.state.role == "standby"
        return web.json_response(self._body(), status=200 if ready else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
