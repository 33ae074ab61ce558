"""Operator-level handlers: startup (settings, API client, kopf tuning), login, probes,
cleanup."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from agentfleet_crds.v1alpha1 import GROUP
from agentfleet_operator.handlers.context import (
    CONTEXT_KEY,
    SETTINGS_KEY,
    OperatorContext,
    context_from,
)
from agentfleet_operator.kube import KubeClient
from agentfleet_operator.settings import OperatorSettings

#: Seconds before a watch is re-opened by the server (kopf's recommended safety net).
WATCH_SERVER_TIMEOUT = 300


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf's own bookkeeping under our prefix and only in annotations: the generated CRD
    schemas are strict, so ``status.kopf`` would be dropped by the API server."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_SERVER_TIMEOUT + 30
    settings.posting.level = logging.INFO


async def startup(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    ours = memo.get(SETTINGS_KEY)
    if not isinstance(ours, OperatorSettings):
        ours = OperatorSettings.from_env()
    configure_kopf(settings)
    memo[CONTEXT_KEY] = OperatorContext(settings=ours, kube=KubeClient())
    scope = "cluster-wide" if ours.clusterwide else f"namespaces {', '.join(ours.namespaces)}"
    logger.info(f"agentfleet operator starting ({scope}, runtime image {ours.runtime_image})")


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
    return info


async def api_client_probe(memo: kopf.Memo, **_: Any) -> bool:
    return context_from(memo).kube.connected


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    context = memo.get(CONTEXT_KEY)
    if isinstance(context, OperatorContext):
        await context.kube.close()


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.startup(registry=registry, id="agentfleet-startup")(startup)
    kopf.on.login(registry=registry, id="agentfleet-login", retries=3, backoff=2)(login)
    kopf.on.probe(registry=registry, id="api-client")(api_client_probe)
    kopf.on.cleanup(registry=registry, id="agentfleet-cleanup")(cleanup)
