"""Both stores behind the same service: put/get/head/delete, tenant namespacing,
retention (expiry recorded on the artifact, the sweep), the per-tenant quota. The S3 store
talks to moto's S3 over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentfleet_runtime.artifacts import (
    ArtifactKind,
    ArtifactQuotaExceededError,
    ArtifactService,
    ArtifactSettings,
    ArtifactStore,
    ArtifactTooLargeError,
)
from agentfleet_runtime.artifacts.base import id_expiry, valid_artifact_id
from agentfleet_runtime.artifacts.filesystem import FilesystemArtifactStore
from agentfleet_runtime.artifacts.s3 import S3ArtifactStore
from agentfleet_runtime.errors import NotFoundError

from .conftest import BUCKET, MotoS3

StoreFactory = Callable[[], ArtifactStore]


@pytest.fixture(params=["filesystem", "s3"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "filesystem":
        return lambda: FilesystemArtifactStore(tmp_path / "artifacts")
    moto: MotoS3 = request.getfixturevalue("s3")
    return lambda: S3ArtifactStore(moto.settings())


def service(store: ArtifactStore, now: datetime | None = None, **settings: Any) -> ArtifactService:
    clock = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    return ArtifactService(store, ArtifactSettings(**settings), now=clock)


async def test_put_get_head_delete_round_trip(make_store: StoreFactory) -> None:
    artifacts = service(make_store())
    data = "Grüße, 世界\n".encode() * 100
    meta = await artifacts.put(
        "acme",
        data,
        kind=ArtifactKind.ATTACHMENT,
        content_type="text/plain; charset=utf-8",
        session_id="ses_1",
        name="grüße.txt",
    )
    assert valid_artifact_id(meta.id)
    assert meta.size == len(data)
    assert meta.expires_at == meta.created_at + timedelta(days=30)  # attachment retention
    assert id_expiry(meta.id) == meta.expires_at  # the id carries it, for the sweep

    got, body = await artifacts.get("acme", meta.id)
    assert body == data
    head = await artifacts.head("acme", meta.id)
    for found in (got, head):
        assert found.kind is ArtifactKind.ATTACHMENT
        assert found.content_type == "text/plain; charset=utf-8"
        assert found.session_id == "ses_1"
        assert found.name == "grüße.txt"
        assert found.size == len(data)
        assert found.sha256 == meta.sha256
        assert found.expires_at == meta.expires_at

    await artifacts.delete("acme", meta.id)
    with pytest.raises(NotFoundError):
        await artifacts.get("acme", meta.id)
    with pytest.raises(NotFoundError):
        await artifacts.delete("acme", meta.id)
    await artifacts.aclose()


async def test_another_tenant_never_sees_an_artifact(make_store: StoreFactory) -> None:
    artifacts = service(make_store())
    meta = await artifacts.put(
        "acme", b"secret", kind=ArtifactKind.TRANSCRIPT, content_type="application/json"
    )
    for call in (artifacts.get, artifacts.head, artifacts.delete):
        with pytest.raises(NotFoundError):
            await call("other", meta.id)
    assert (await artifacts.get("acme", meta.id))[1] == b"secret"  # still there
    for bad in ("../acme/" + meta.id, "art_1_xyz", meta.id + "/../x", ""):
        with pytest.raises(NotFoundError):
            await artifacts.get("acme", bad)


async def test_retention_sweep_deletes_expired_artifacts_only(make_store: StoreFactory) -> None:
    store = make_store()
    start = datetime.now(UTC) - timedelta(days=3)
    then = service(store, now=start, retention_days={"tool_result": 1, "transcript": 0})
    old = await then.put(
        "acme", b"x" * 10, kind=ArtifactKind.TOOL_RESULT, content_type="text/plain"
    )
    forever = await then.put(
        "acme", b"y" * 10, kind=ArtifactKind.TRANSCRIPT, content_type="application/json"
    )
    assert old.expires_at == old.created_at + timedelta(days=1)
    assert forever.expires_at is None
    now = service(store, retention_days={"tool_result": 1, "transcript": 0})
    fresh = await now.put("beta", b"z", kind=ArtifactKind.TOOL_RESULT, content_type="text/plain")
    with pytest.raises(NotFoundError):  # expired: gone for readers even before the sweep
        await now.get("acme", old.id)
    assert await store.list_expired(datetime.now(UTC)) == [("acme", old.id)]

    assert await now.sweep() == 1

    assert await store.head("acme", old.id) is None
    assert (await now.get("acme", forever.id))[1] == b"y" * 10
    assert (await now.get("beta", fresh.id))[1] == b"z"
    assert await now.sweep() == 0


async def test_tenant_byte_quota_refuses_what_does_not_fit(make_store: StoreFactory) -> None:
    artifacts = service(make_store(), max_bytes_per_tenant=100)
    await artifacts.put("acme", b"a" * 60, kind=ArtifactKind.ATTACHMENT, content_type="text/plain")
    with pytest.raises(ArtifactQuotaExceededError) as caught:
        await artifacts.put(
            "acme", b"b" * 60, kind=ArtifactKind.ATTACHMENT, content_type="text/plain"
        )
    assert caught.value.status == 507
    assert caught.value.extensions["used"] == 60
    assert caught.value.extensions["quota"] == 100
    assert "artifact quota" in caught.value.detail
    assert await artifacts.store.usage("acme") == 60  # nothing was written
    # Another tenant has its own quota.
    await artifacts.put("beta", b"c" * 60, kind=ArtifactKind.ATTACHMENT, content_type="text/plain")
    with pytest.raises(ArtifactTooLargeError):
        await artifacts.put(
            "beta", b"d" * 11, kind=ArtifactKind.ATTACHMENT, content_type="x/y", max_size=10
        )


async def test_s3_objects_are_namespaced_tagged_and_described(s3: MotoS3) -> None:
    artifacts = service(S3ArtifactStore(s3.settings(prefix="fleet/")))
    meta = await artifacts.put(
        "acme",
        b"{}",
        kind=ArtifactKind.TRANSCRIPT,
        content_type="application/json",
        session_id="ses_9",
        name="ses_9.json",
    )
    key = f"fleet/acme/{meta.id}"
    assert s3.objects() == {key: 2}
    client = s3.client()
    tags = {
        t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    }
    assert meta.expires_at is not None
    assert tags == {
        "agentfleet-kind": "transcript",
        "agentfleet-expires": meta.expires_at.date().isoformat(),
    }
    head = client.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentType"] == "application/json"
    assert head["Metadata"]["agentfleet-tenant"] == "acme"
    assert head["Metadata"]["agentfleet-session"] == "ses_9"


async def test_filesystem_layout_is_tenant_directories(tmp_path: Path) -> None:
    root = tmp_path / "store"
    artifacts = service(FilesystemArtifactStore(root))
    assert await artifacts.store.list_expired(datetime.now(UTC)) == []  # no directory yet
    meta = await artifacts.put(
        "acme", b"hello", kind=ArtifactKind.ATTACHMENT, content_type="text/plain"
    )
    assert (root / "acme" / meta.id).read_bytes() == b"hello"
    assert (root / "acme" / f"{meta.id}.json").is_file()
    assert not [p for p in (root / "acme").iterdir() if p.name.startswith(".tmp-")]
