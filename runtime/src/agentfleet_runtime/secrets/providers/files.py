"""Secrets from mounted Kubernetes Secret volumes: ``<root>/<secret>/<key>``.

How kubelet updates a mounted Secret (its "atomic writer"): the keys are files in a
timestamped directory ``..2026_11_25_03_00_00.123``; ``..data`` is a symlink to it and each
key ``<key>`` is a symlink to ``..data/<key>``. An update writes a new timestamped
directory, points a temporary symlink ``..data_tmp`` at it, ``rename()`` s that over
``..data`` (atomic), then deletes the old directory. So a reader always sees a whole old or
a whole new Secret, and the key files themselves never change — the directory does.

This provider therefore watches the *directories* (inotify through ``watchfiles``; polling
where inotify is unavailable), re-reads every key of a directory on any change there, and
reports the ``..data`` target as the version. ``subPath`` mounts never update (a Kubernetes
rule): mount whole Secrets.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from agentfleet_runtime.errors import DependencyError
from agentfleet_runtime.secrets.base import SecretProvider, SecretRef, SecretValue, select_property
from agentfleet_runtime.secrets.errors import SecretNotFoundError

DATA_LINK = "..data"


class FileSecretProvider(SecretProvider):
    """``ref.key`` is ``<secret>/<key>`` relative to ``root``."""

    name = "files"
    supports_watch = True

    def __init__(
        self,
        root: Path,
        *,
        watch: bool = True,
        force_polling: bool = False,
        debounce_ms: int = 100,
    ) -> None:
        self.root = Path(root)
        self.supports_watch = watch
        self.force_polling = force_polling
        self.debounce_ms = debounce_ms
        self._stop = asyncio.Event()

    def path(self, ref: SecretRef) -> Path:
        root = self.root.resolve()
        path = (self.root / ref.key).resolve()
        if not path.is_relative_to(root) or ref.key.startswith("/"):
            raise SecretNotFoundError(
                f"secret file {ref.key!r} is outside the secrets directory",
                dependency=self.dependency,
            )
        return self.root / ref.key

    async def get(self, ref: SecretRef) -> SecretValue:
        return await asyncio.to_thread(self._read, ref)

    def _read(self, ref: SecretRef) -> SecretValue:
        path = self.path(ref)
        try:
            raw = path.read_text(encoding="utf-8")
            stat = path.stat()
        except FileNotFoundError:
            raise SecretNotFoundError(
                f"secret file {ref.key!r} is not mounted under {self.root}",
                dependency=self.dependency,
            ) from None
        except OSError as exc:
            raise DependencyError(
                f"cannot read secret file {ref.key!r}: {exc.strerror}",
                dependency=self.dependency,
            ) from None
        value = select_property(raw.rstrip("\r\n"), ref, provider=self.name)
        return SecretValue(
            value=SecretStr(value),
            version=_version(path.parent, stat.st_mtime_ns),
            created_at=datetime.fromtimestamp(stat.st_mtime, UTC),
        )

    async def watch(self, refs: Collection[SecretRef]) -> AsyncIterator[set[SecretRef]]:
        from watchfiles import awatch

        by_dir: dict[str, set[SecretRef]] = {}
        for ref in refs:
            by_dir.setdefault(ref.key.split("/", 1)[0], set()).add(ref)
        self._stop.clear()
        while not self._stop.is_set():
            if not self.root.is_dir():
                await _sleep_or_stop(self._stop, 1.0)
                continue
            async for changes in awatch(
                self.root,
                stop_event=self._stop,
                debounce=self.debounce_ms,
                step=20,
                force_polling=self.force_polling,
                poll_delay_ms=200,
                recursive=True,
                ignore_permission_denied=True,
                watch_filter=None,
            ):
                changed: set[SecretRef] = set()
                root = self.root.absolute().parts
                for _, changed_path in changes:
                    parts = Path(changed_path).parts
                    top = parts[len(root)] if parts[: len(root)] == root else None
                    if top is None or len(parts) == len(root):
                        changed |= set(refs)
                    else:
                        changed |= by_dir.get(top, set())
                if changed:
                    yield changed

    async def aclose(self) -> None:
        self._stop.set()


def _version(directory: Path, mtime_ns: int) -> str:
    """The kubelet data directory the key resolves to, else the file's mtime."""
    try:
        return os.readlink(directory / DATA_LINK).rstrip("/")
    except OSError:
        return f"mtime-{mtime_ns}"


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return


def write_atomic(directory: Path, data: dict[str, str], *, stamp: str | None = None) -> str:
    """Write ``data`` as kubelet's atomic writer does (new timestamped directory, ``..data``
    symlink swapped by ``rename``, key symlinks, old directory removed). Used by tests and
    by ``agentfleet dev`` users who want to rehearse a rotation. Returns the new data
    directory's name."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    name = stamp or now.strftime("..%Y_%m_%d_%H_%M_%S.") + f"{now.microsecond:06d}{os.getpid()}"
    data_dir = directory / name
    data_dir.mkdir()
    for key, value in data.items():
        (data_dir / key).write_text(value, encoding="utf-8")
        os.chmod(data_dir / key, 0o400)
    link = directory / DATA_LINK
    old = os.readlink(link) if link.is_symlink() else None
    tmp = directory / (DATA_LINK + "_tmp")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(name, tmp)
    os.replace(tmp, link)
    for key in data:
        key_link = directory / key
        if not key_link.is_symlink():
            os.symlink(f"{DATA_LINK}/{key}", key_link)
    for stale in directory.iterdir():
        if stale.is_symlink() and stale.name not in data and not stale.name.startswith(".."):
            stale.unlink()
    if old and old != name:
        old_dir = directory / old
        for child in old_dir.iterdir():
            os.chmod(child, 0o600)
            child.unlink()
        old_dir.rmdir()
    return name
