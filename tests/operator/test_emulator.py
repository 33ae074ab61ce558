"""The emulated Kubernetes API behaves the way kopf needs (over real HTTP)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from agentfleet_operator.kube import ConflictError, InvalidError, KubeClient, NotFoundError
from agentfleet_operator.kube.resources import AGENTS, CONFIG_MAPS, DEPLOYMENTS, ApiResource
from agentfleet_operator.testing.emulator import KubernetesAPIEmulator, parse_label_selector

EVENTS = ApiResource("", "v1", "events", "Event")
NAMESPACES = ApiResource("", "v1", "namespaces", "Namespace", namespaced=False)


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def agent(name: str, prompt: str = "hi") -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name},
        "spec": {"model": {"provider": "fake", "name": "m"}, "systemPrompt": prompt},
    }


async def test_create_sets_server_metadata(kube: KubeClient) -> None:
    created = await kube.create(CONFIG_MAPS, "ns", config_map("one", a="1"))
    meta = created["metadata"]
    assert meta["namespace"] == "ns"
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    with pytest.raises(ConflictError):
        await kube.create(CONFIG_MAPS, "ns", config_map("one"))


async def test_generate_name(kube: KubeClient) -> None:
    body = {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "kopf-event-"}}
    first = await kube.create(EVENTS, "ns", body)
    second = await kube.create(EVENTS, "ns", body)
    assert first["metadata"]["name"].startswith("kopf-event-")
    assert first["metadata"]["name"] != second["metadata"]["name"]


async def test_generation_moves_on_spec_changes_only(kube: KubeClient) -> None:
    created = await kube.create(AGENTS, "ns", agent("a"))
    rv = int(created["metadata"]["resourceVersion"])
    labelled = await kube.patch(AGENTS, "ns", "a", {"metadata": {"labels": {"x": "y"}}})
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > rv
    changed = await kube.patch(AGENTS, "ns", "a", {"spec": {"systemPrompt": "new"}})
    assert changed["metadata"]["generation"] == 2
    same = await kube.patch(AGENTS, "ns", "a", {"spec": {"systemPrompt": "new"}})
    assert same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]


async def test_status_subresource_is_separate(kube: KubeClient) -> None:
    await kube.create(AGENTS, "ns", agent("a"))
    ignored = await kube.patch(AGENTS, "ns", "a", {"status": {"endpoint": "x"}})
    assert "status" not in ignored
    status = await kube.patch(
        AGENTS,
        "ns",
        "a",
        {"status": {"endpoint": "x"}, "spec": {"maxSteps": 3}},
        subresource="status",
    )
    assert status["status"] == {"endpoint": "x"}
    assert "maxSteps" not in status["spec"]
    assert status["metadata"]["generation"] == 1


async def test_failed_json_patch_test_answers_422(
    emulator: KubernetesAPIEmulator, kube: KubeClient
) -> None:
    created = await kube.create(CONFIG_MAPS, "ns", config_map("one"))
    rv = created["metadata"]["resourceVersion"]
    url = f"{str(emulator.url).rstrip('/')}/api/v1/namespaces/ns/configmaps/one"
    headers = {"Content-Type": "application/json-patch+json"}
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "stale"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
    ]
    async with aiohttp.ClientSession() as http:
        async with http.patch(url, data=json.dumps(ops), headers=headers) as response:
            assert response.status == 422
        ops[0]["value"] = rv
        async with http.patch(url, data=json.dumps(ops), headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["metadata"]["finalizers"] == ["x"]


async def test_merge_patch_precondition(kube: KubeClient) -> None:
    await kube.create(CONFIG_MAPS, "ns", config_map("one"))
    with pytest.raises(ConflictError):
        await kube.patch(CONFIG_MAPS, "ns", "one", {"metadata": {"resourceVersion": "1"}})
    with pytest.raises(NotFoundError):
        await kube.patch(CONFIG_MAPS, "ns", "missing", {"data": {}})


async def test_finalizers_block_deletion_until_removed(kube: KubeClient) -> None:
    body = config_map("one")
    body["metadata"]["finalizers"] = ["agentfleet.dev/test"]
    await kube.create(CONFIG_MAPS, "ns", body)
    await kube.delete(CONFIG_MAPS, "ns", "one")
    marked = await kube.get(CONFIG_MAPS, "ns", "one")
    assert marked["metadata"]["deletionTimestamp"]
    await kube.patch(CONFIG_MAPS, "ns", "one", {"metadata": {"finalizers": None}})
    assert await kube.get_or_none(CONFIG_MAPS, "ns", "one") is None


async def test_owner_references_are_garbage_collected(kube: KubeClient) -> None:
    owner = await kube.create(AGENTS, "ns", agent("a"))
    child = config_map("child")
    child["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "Agent",
            "name": "a",
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
    ]
    await kube.create(CONFIG_MAPS, "ns", child)
    await kube.create(CONFIG_MAPS, "ns", config_map("unrelated"))
    await kube.delete(AGENTS, "ns", "a")
    assert await kube.get_or_none(CONFIG_MAPS, "ns", "child") is None
    assert await kube.get_or_none(CONFIG_MAPS, "ns", "unrelated") is not None


async def test_namespaces_are_listed(kube: KubeClient) -> None:
    await kube.create(CONFIG_MAPS, "team-a", config_map("one"))
    names = [ns["metadata"]["name"] for ns in await kube.list_objects(NAMESPACES, None)]
    assert "team-a" in names
    fetched = await kube.get(NAMESPACES, None, "team-a")
    assert fetched["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}


async def test_invalid_json_patch_answers_422(kube: KubeClient) -> None:
    await kube.create(CONFIG_MAPS, "ns", config_map("one"))
    with pytest.raises(InvalidError):
        await kube._request(  # a raw JSON patch: the client itself only merge-patches
            "PATCH",
            CONFIG_MAPS.path("ns", "one"),
            body=[{"op": "remove", "path": "/nope"}],
            content_type="application/json-patch+json",
        )


async def watch(emulator: KubernetesAPIEmulator, path: str, **params: str) -> list[dict[str, Any]]:
    """The events of a watch that the server ends after ``timeoutSeconds``."""
    events: list[dict[str, Any]] = []
    query = {"watch": "true", "timeoutSeconds": "0.3", **params}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{str(emulator.url).rstrip('/')}{path}", params=query) as response,
    ):
        async for line in response.content:
            if line.strip():
                events.append(json.loads(line))
    return events


async def test_watch_resumes_from_resource_version(
    emulator: KubernetesAPIEmulator, kube: KubeClient
) -> None:
    await kube.create(CONFIG_MAPS, "ns", config_map("old"))
    listing = await kube._request("GET", CONFIG_MAPS.path("ns"))
    since = listing["metadata"]["resourceVersion"]
    await kube.create(CONFIG_MAPS, "ns", config_map("new"))
    await kube.patch(CONFIG_MAPS, "ns", "old", {"data": {"k": "v"}})
    events = await watch(emulator, CONFIG_MAPS.path("ns"), resourceVersion=since)
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert seen == [("ADDED", "new"), ("MODIFIED", "old")]


async def test_watch_streams_live_changes_with_selectors(
    emulator: KubernetesAPIEmulator, kube: KubeClient
) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        labelled = config_map("labelled")
        labelled["metadata"]["labels"] = {"app": "x"}
        await kube.create(CONFIG_MAPS, "ns", labelled)
        await kube.create(CONFIG_MAPS, "ns", config_map("plain"))

    task = asyncio.create_task(later())
    events = await watch(emulator, CONFIG_MAPS.path(), labelSelector="app=x")
    await task
    assert [e["object"]["metadata"]["name"] for e in events] == ["labelled"]


async def test_initial_events_end_with_a_bookmark(
    emulator: KubernetesAPIEmulator, kube: KubeClient
) -> None:
    await kube.create(
        DEPLOYMENTS,
        "ns",
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}},
    )
    events = await watch(emulator, DEPLOYMENTS.path(), sendInitialEvents="true")
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    annotations = events[1]["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a,!c", {"a": "1"}, True),
        ("a,!c", {"a": "1", "c": "2"}, False),
        ("a in (x, y),b notin (z)", {"a": "y", "b": "w"}, True),
        ("a in (x, y)", {"a": "z"}, False),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert all(r.matches(labels) for r in parse_label_selector(selector)) is expected
