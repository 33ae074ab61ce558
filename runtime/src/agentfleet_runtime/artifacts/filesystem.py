"""``FilesystemArtifactStore``: artifacts as files under one directory (development, or
a single replica with a persistent volume)::

    <dir>/<tenant>/<artifact id>        the bytes
    <dir>/<tenant>/<artifact id>.json   its ArtifactMeta

Files are written to a temporary name and renamed into place, the bytes before the
metadata: an artifact exists once its metadata does. Blocking file I/O runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from datetime import datetime
from pathlib import Path

from agentfleet_runtime.artifacts.base import (
    ArtifactMeta,
    expired_ids,
    id_expiry,
    valid_artifact_id,
)

__all__ = ["FilesystemArtifactStore"]

_META = ".json"


class FilesystemArtifactStore:
    name = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _paths(self, tenant: str, artifact_id: str) -> tuple[Path, Path]:
        if not valid_artifact_id(artifact_id) or not tenant or "/" in tenant or ".." in tenant:
            raise ValueError(f"not an artifact of a tenant: {tenant!r}/{artifact_id!r}")
        folder = self.root / tenant
        return folder / artifact_id, folder / (artifact_id + _META)

    async def put(self, meta: ArtifactMeta, data: bytes) -> None:
        await asyncio.to_thread(self._put, meta, data)

    def _put(self, meta: ArtifactMeta, data: bytes) -> None:
        body, sidecar = self._paths(meta.tenant, meta.id)
        body.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(body, data)
        _write_atomically(sidecar, meta.model_dump_json().encode())

    async def get(self, tenant: str, artifact_id: str) -> tuple[ArtifactMeta, bytes] | None:
        return await asyncio.to_thread(self._get, tenant, artifact_id)

    def _get(self, tenant: str, artifact_id: str) -> tuple[ArtifactMeta, bytes] | None:
        meta = self._head(tenant, artifact_id)
        if meta is None:
            return None
        body, _ = self._paths(tenant, artifact_id)
        try:
            return meta, body.read_bytes()
        except FileNotFoundError:
            return None

    async def head(self, tenant: str, artifact_id: str) -> ArtifactMeta | None:
        return await asyncio.to_thread(self._head, tenant, artifact_id)

    def _head(self, tenant: str, artifact_id: str) -> ArtifactMeta | None:
        _, sidecar = self._paths(tenant, artifact_id)
        try:
            return ArtifactMeta.model_validate_json(sidecar.read_bytes())
        except FileNotFoundError:
            return None

    async def delete(self, tenant: str, artifact_id: str) -> bool:
        return await asyncio.to_thread(self._delete, tenant, artifact_id)

    def _delete(self, tenant: str, artifact_id: str) -> bool:
        body, sidecar = self._paths(tenant, artifact_id)
        existed = sidecar.exists()
        for path in (sidecar, body):  # the metadata first: a half-deleted one is gone
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return existed

    async def list_expired(self, now: datetime, *, limit: int = 1000) -> list[tuple[str, str]]:
        return await asyncio.to_thread(self._list_expired, now, limit)

    def _list_expired(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        return expired_ids(self._ids(), now)[:limit]

    def _ids(self) -> list[tuple[str, str]]:
        if not self.root.is_dir():
            return []
        found = []
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if path.name.endswith(_META) and valid_artifact_id(path.name[: -len(_META)]):
                    found.append((folder.name, path.name[: -len(_META)]))
        return found

    async def usage(self, tenant: str) -> int:
        return await asyncio.to_thread(self._usage, tenant)

    def _usage(self, tenant: str) -> int:
        folder = self.root / tenant
        if not folder.is_dir():
            return 0
        now = datetime.now().astimezone()
        total = 0
        for path in folder.iterdir():
            if not valid_artifact_id(path.name):
                continue
            expiry = id_expiry(path.name)
            if expiry is not None and expiry <= now:
                continue
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    async def aclose(self) -> None:
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
