"""Apply rendered objects: create what is missing, patch what differs, delete what was
switched off. Only objects the owner controls are ever patched or deleted."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from agentfleet_operator.kube.client import KubeClient
from agentfleet_operator.kube.errors import ConflictError, NotFoundError, OwnershipConflictError
from agentfleet_operator.kube.resources import resource_for


def owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner_uid for ref in refs)


def contains(actual: Any, desired: Any) -> bool:
    """Whether ``actual`` already holds everything ``desired`` says (the API server adds
    defaults and bookkeeping, so equality is too strict)."""
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and contains(actual[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(desired)
            and all(contains(a, d) for a, d in zip(actual, desired, strict=True))
        )
    return bool(actual == desired)


class Action(StrEnum):
    UNCHANGED = "unchanged"
    CREATED = "created"
    PATCHED = "patched"


async def apply_object(
    client: KubeClient, desired: Mapping[str, Any], owner_uid: str | None
) -> dict[str, Any]:
    """Create ``desired`` or merge-patch it onto the existing object; returns the object as
    the server has it."""
    applied, _ = await apply_object_action(client, desired, owner_uid)
    return applied


async def apply_object_action(
    client: KubeClient, desired: Mapping[str, Any], owner_uid: str | None
) -> tuple[dict[str, Any], Action]:
    """:func:`apply_object`, also saying what it did. Tolerates losing a race (409 on
    create, 404 on patch) once."""
    resource = resource_for(desired["apiVersion"], desired["kind"])
    meta = desired["metadata"]
    namespace, name = meta.get("namespace"), meta["name"]
    for _ in range(2):
        current = await client.get_or_none(resource, namespace, name)
        if current is None:
            try:
                return await client.create(resource, namespace, desired), Action.CREATED
            except ConflictError:
                continue  # created meanwhile: patch it on the next round
        if owner_uid is not None and not owned_by(current, owner_uid):
            raise OwnershipConflictError(resource.kind, namespace or "", name)
        if contains(current, desired):
            return current, Action.UNCHANGED
        try:
            return await client.patch(resource, namespace, name, desired), Action.PATCHED
        except NotFoundError:
            continue  # deleted meanwhile: create it on the next round
    return await client.patch(resource, namespace, name, desired), Action.PATCHED


async def delete_owned(
    client: KubeClient,
    *,
    api_version: str,
    kind: str,
    namespace: str,
    name: str,
    owner_uid: str | None,
) -> bool:
    """Delete the object if it exists and is ours; whether it was deleted."""
    resource = resource_for(api_version, kind)
    current = await client.get_or_none(resource, namespace, name)
    if current is None or (owner_uid is not None and not owned_by(current, owner_uid)):
        return False
    try:
        await client.delete(resource, namespace, name)
    except NotFoundError:
        return False
    return True
