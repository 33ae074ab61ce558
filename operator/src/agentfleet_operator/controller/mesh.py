"""Which service mesh to render for: as configured, or detected from the API groups the
cluster serves (installing Istio or Linkerd installs their CRDs)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from agentfleet_operator.kube import KubeClient
from agentfleet_operator.render.mesh import ISTIO_GROUP, LINKERD_POLICY_GROUP, Mesh, MeshConfig
from agentfleet_operator.settings import MeshSetting

logger = logging.getLogger("agentfleet.operator.mesh")

ISTIO_VERSIONS = ("v1", "v1beta1")
LINKERD_ROUTE_VERSIONS = ("v1beta3", "v1beta2")


def _versions(group: Mapping[str, Any] | None) -> list[str]:
    if not group:
        return []
    return [str(v.get("version")) for v in group.get("versions") or []]


def _pick(available: Sequence[str], wanted: Sequence[str]) -> str | None:
    return next((v for v in wanted if v in available), None)


def mesh_from_groups(groups: Mapping[str, Any], setting: MeshSetting) -> MeshConfig:
    """The mesh config from an ``APIGroupList`` (``GET /apis``). Pure."""
    by_name = {str(g.get("name")): g for g in groups.get("groups") or []}
    istio = _pick(_versions(by_name.get(ISTIO_GROUP)), ISTIO_VERSIONS)
    linkerd = _pick(_versions(by_name.get(LINKERD_POLICY_GROUP)), LINKERD_ROUTE_VERSIONS)
    if setting == "none":
        return MeshConfig()
    if setting == "istio":
        return MeshConfig(Mesh.ISTIO, istio_version=istio or ISTIO_VERSIONS[0])
    if setting == "linkerd":
        return MeshConfig(Mesh.LINKERD, linkerd_route_version=linkerd or LINKERD_ROUTE_VERSIONS[0])
    if istio is not None:
        if linkerd is not None:
            logger.warning("both Istio and Linkerd CRDs are installed: rendering for Istio")
        return MeshConfig(Mesh.ISTIO, istio_version=istio)
    if linkerd is not None:
        return MeshConfig(Mesh.LINKERD, linkerd_route_version=linkerd)
    return MeshConfig()


async def detect_mesh(kube: KubeClient, setting: MeshSetting) -> MeshConfig:
    """Ask the API server which groups it serves (discovery needs no extra RBAC)."""
    if setting == "none":
        return MeshConfig()
    groups = await kube.get_path("/apis")
    config = mesh_from_groups(groups, setting)
    logger.info(f"service mesh: {config.mesh} (setting: {setting})")
    return config
