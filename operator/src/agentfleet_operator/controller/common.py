"""What every reconcile shares: plain bodies, applying owned objects, writing status once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentfleet_operator.context import OperatorContext
from agentfleet_operator.kube import ConflictError, KubeClient
from agentfleet_operator.kube.apply import Action, apply_object_action, delete_owned
from agentfleet_operator.kube.resources import ApiResource
from agentfleet_operator.render.agent import ObjectRef
from agentfleet_operator.status import status_changed


def plain(value: Any) -> Any:
    """kopf's body views → plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def resource_body(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a stored object the models validate (server-set ``status`` is not)."""
    return {key: raw[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in raw}


@dataclass
class ApplyReport:
    """What applying a set of owned objects did."""

    applied: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: (kind, name) of objects created or patched back.
    changed: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.applied.get((kind, name))


async def apply_owned(
    context: OperatorContext,
    objects: Sequence[Mapping[str, Any]],
    absent: Iterable[ObjectRef],
    owner_uid: str | None,
) -> ApplyReport:
    """Create or patch ``objects``, delete ``absent`` ones (if ours); remember the
    resourceVersions written so that their watch echo is not taken for drift."""
    report = ApplyReport()
    for obj in objects:
        applied, action = await apply_object_action(context.kube, obj, owner_uid)
        meta = applied.get("metadata") or {}
        key = (str(obj["kind"]), str(meta.get("namespace")), str(meta.get("name")))
        report.applied[(key[0], key[2])] = applied
        if action is not Action.UNCHANGED:
            report.changed.append((key[0], key[2]))
            if meta.get("resourceVersion"):
                context.written[key] = str(meta["resourceVersion"])
    for ref in absent:
        if await delete_owned(
            context.kube,
            api_version=ref.api_version,
            kind=ref.kind,
            namespace=ref.namespace,
            name=ref.name,
            owner_uid=owner_uid,
        ):
            report.deleted.append((ref.kind, ref.name))
    return report


async def write_status(
    kube: KubeClient, resource: ApiResource, raw: Mapping[str, Any], status: Mapping[str, Any]
) -> bool:
    """Merge-patch ``status`` if it changes anything, conditional on the resourceVersion
    read (a status computed from an outdated read is never written). Whether it wrote;
    raises :class:`ConflictError` when the object changed meanwhile."""
    if not status_changed(raw.get("status"), status):
        return False
    meta = raw["metadata"]
    await kube.patch(
        resource,
        meta.get("namespace"),
        meta["name"],
        {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": dict(status)},
        subresource="status",
    )
    return True


__all__ = [
    "ApplyReport",
    "ConflictError",
    "apply_owned",
    "plain",
    "resource_body",
    "write_status",
]
