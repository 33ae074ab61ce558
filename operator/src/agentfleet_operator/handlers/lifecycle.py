"""Operator-level handlers: startup (settings, API client, work queue, kopf tuning), login
(credentials, mesh detection), probes, cleanup."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import kopf

from agentfleet_crds.v1alpha1 import GROUP
from agentfleet_operator.context import (
    CONTEXT_KEY,
    METRICS_KEY,
    SETTINGS_KEY,
    OperatorContext,
    context_from,
)
from agentfleet_operator.controller import create_queue
from agentfleet_operator.controller.events import EventRecorder
from agentfleet_operator.controller.mesh import detect_mesh
from agentfleet_operator.controller.resync import resync_forever
from agentfleet_operator.handlers.triggers import MANAGED, OWNED_MESH_RESOURCES, OWNED_RESOURCES
from agentfleet_operator.kube import KubeClient, KubeError
from agentfleet_operator.observability import OperatorMetrics
from agentfleet_operator.settings import OperatorSettings

logger = logging.getLogger("agentfleet.operator")

#: Seconds before a watch is re-opened by the server (kopf's recommended safety net).
WATCH_SERVER_TIMEOUT = 300


def configure_kopf(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """kopf's own bookkeeping under our prefix and only in annotations (the generated CRD
    schemas are strict, so ``status.kopf`` would be dropped); owned objects are watched with
    a server-side label selector (only ours reach the operator); every API call kopf makes
    is bounded too."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_SERVER_TIMEOUT + 30
    settings.watching.connect_timeout = ours.request_timeout_seconds
    settings.networking.request_timeout = ours.request_timeout_seconds * 3
    settings.networking.connect_timeout = ours.request_timeout_seconds
    settings.posting.level = logging.WARNING
    selector = ",".join(f"{k}={v}" for k, v in MANAGED.items())
    for resource in OWNED_RESOURCES:
        settings.watching.label_selectors[resource] = selector
    for mesh_resource in OWNED_MESH_RESOURCES:
        settings.watching.label_selectors[mesh_resource] = selector
    if not ours.standalone:
        settings.peering.standalone = False


async def startup(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    ours = memo.get(SETTINGS_KEY)
    if not isinstance(ours, OperatorSettings):
        ours = OperatorSettings.from_env()
    configure_kopf(settings, ours)
    metrics = memo.get(METRICS_KEY)
    if not isinstance(metrics, OperatorMetrics):
        metrics = OperatorMetrics()
    kube = KubeClient(
        request_timeout=ours.request_timeout_seconds, observer=metrics.observe_request
    )
    context = OperatorContext(settings=ours, kube=kube, metrics=metrics)
    context.events = EventRecorder(kube, instance=ours.pod_name or socket.gethostname())
    create_queue(context).start()
    context.extensions["resync"] = asyncio.create_task(resync_forever(context))
    memo[CONTEXT_KEY] = context
    scope = "cluster-wide" if ours.clusterwide else f"namespaces {', '.join(ours.namespaces)}"
    logger.info(
        f"agentfleet operator starting ({scope}, runtime image {ours.runtime_image}, "
        f"{ours.workers} workers)"
    )


def connection_info(
    ours: OperatorSettings, kopf_settings: kopf.OperatorSettings
) -> kopf.ConnectionInfo | None:
    """Credentials: an explicit API URL, else the pod's service account, else kubeconfig."""
    if ours.kube_api_server is not None:
        return kopf.ConnectionInfo(
            server=ours.kube_api_server, insecure=True if ours.kube_insecure else None
        )
    return kopf.login_with_service_account(settings=kopf_settings) or kopf.login_with_kubeconfig(
        settings=kopf_settings
    )


async def login(
    settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any
) -> kopf.ConnectionInfo | None:
    context = context_from(memo)
    info = connection_info(context.settings, settings)
    if info is not None:
        await context.kube.connect(info)
        try:
            context.mesh = await detect_mesh(context.kube, context.settings.mesh)
        except KubeError as exc:
            raise kopf.TemporaryError(f"service mesh detection failed: {exc}", delay=2) from exc
    return info


async def api_client_probe(memo: kopf.Memo, **_: Any) -> bool:
    return context_from(memo).kube.connected


async def queue_probe(memo: kopf.Memo, **_: Any) -> int:
    queue = context_from(memo).queue
    return queue.depth if queue is not None else 0


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    context = memo.get(CONTEXT_KEY)
    if isinstance(context, OperatorContext):
        for task in (context.extensions.get("resync"),):
            if isinstance(task, asyncio.Task):
                task.cancel()
        probes = context.extensions.get("probes")
        for probe in list(getattr(probes, "running", {}).values()):
            probe.cancel()
        if context.queue is not None:
            await context.queue.stop()
        if context.events is not None:
            await context.events.drain()
        await context.kube.close()


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.startup(registry=registry, id="agentfleet-startup")(startup)
    kopf.on.login(registry=registry, id="agentfleet-login", retries=5, backoff=2)(login)
    kopf.on.probe(registry=registry, id="api-client")(api_client_probe)
    kopf.on.probe(registry=registry, id="queue-depth")(queue_probe)
    kopf.on.cleanup(registry=registry, id="agentfleet-cleanup")(cleanup)
