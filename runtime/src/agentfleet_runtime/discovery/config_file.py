"""Watching the runtime config file the operator renders (a ConfigMap volume) and
applying its changes live.

The kubelet replaces a ConfigMap volume's files atomically (a symlink swap) some time
after the ConfigMap changed, so the file is polled: its text is read every
``interval`` seconds and compared by SHA-256 (the same digest as the Agent's
``status.configHash``), which sees the swap whatever the file's times say.

* **Changed and valid** → :func:`~agentfleet_runtime.discovery.reload.apply_runtime_config`
  (agents added, removed or switched over with health checks; a failing agent rolled back).
* **Changed but invalid** (YAML or schema) → **rejected**: the config in force keeps
  serving; an error log names the field, ``agentfleet_config_reloads_total{outcome=
  "rejected"}`` counts it. The same text is not reported twice.
* **Unreadable or gone** (the source is unavailable) → the last known config keeps
  serving; ``agentfleet_discovery_source_up{source="config-file"}`` is 0 and a warning
  is logged once per outage, an info once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from agentfleet_crds.contract import RuntimeConfig
from agentfleet_runtime.discovery.reload import ReloadReport
from agentfleet_runtime.loader import ConfigError, parse_runtime_config
from agentfleet_runtime.observability import metrics

log = logging.getLogger(__name__)

SOURCE: Final = "config-file"

Apply = Callable[[RuntimeConfig], Awaitable[ReloadReport]]


def config_digest(text: str) -> str:
    """SHA-256 of the config text: the operator's ``status.configHash`` of the same text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one look at the file found: ``unchanged``, ``unavailable``, ``rejected``,
    ``applied`` or ``rolled_back``."""

    outcome: str
    detail: str | None = None
    report: ReloadReport | None = None


class ConfigFileSource:
    """Polls ``path`` and hands a changed, valid config to ``apply``."""

    def __init__(
        self, path: Path, apply: Apply, *, interval: float = 5.0, initial_text: str | None = None
    ) -> None:
        """``initial_text``: the text the process started from (its config is in force)."""
        self.path = path
        self.interval = interval
        self._apply = apply
        self._digest = config_digest(initial_text) if initial_text is not None else None
        self._rejected: str | None = None
        self._up = True
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.last_error: str | None = None
        self.last_success: float | None = time.time() if initial_text is not None else None
        self.last_report: ReloadReport | None = None
        self.applied_at: float | None = self.last_success
        metrics.DISCOVERY_SOURCE_UP.labels(SOURCE).set(1)
        if self.last_success is not None:
            metrics.DISCOVERY_LAST_SUCCESS.labels(SOURCE).set(self.last_success)

    @property
    def digest(self) -> str | None:
        """The digest of the config in force (``None``: none loaded from the file yet)."""
        return self._digest

    @property
    def up(self) -> bool:
        return self._up

    async def check(self) -> CheckResult:
        """Look at the file once; apply it if it changed and is valid."""
        async with self._lock:
            try:
                text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
            except OSError as exc:
                return self._unavailable(f"cannot read {self.path}: {exc.strerror or exc}")
            self._available()
            digest = config_digest(text)
            if digest == self._digest or digest == self._rejected:
                return CheckResult("unchanged")
            try:
                config = parse_runtime_config(text, origin=str(self.path))
            except ConfigError as exc:
                self._rejected = digest
                self.last_error = str(exc)
                metrics.CONFIG_RELOADS.labels("rejected").inc()
                log.error(
                    "runtime config change rejected; the config in force keeps serving",
                    extra={"path": str(self.path), "error": str(exc), "digest": digest},
                )
                return CheckResult("rejected", str(exc))
            report = await self._apply(config)
            self._digest, self._rejected = digest, None
            self.last_report = report
            self.applied_at = time.time()
            self.last_error = (
                None
                if not report.rolled_back
                else "; ".join(f"{k}: {v}" for k, v in report.rolled_back.items())
            )
            metrics.CONFIG_RELOADS.labels(report.outcome).inc()
            log.info(
                "runtime config change applied",
                extra={"path": str(self.path), "digest": digest, **report.as_dict()},
            )
            return CheckResult(report.outcome, self.last_error, report)

    def _unavailable(self, reason: str) -> CheckResult:
        if self._up:
            log.warning(
                "runtime config source unavailable; serving the last known configuration",
                extra={"source": SOURCE, "path": str(self.path), "error": reason},
            )
        self._up = False
        self.last_error = reason
        metrics.DISCOVERY_SOURCE_UP.labels(SOURCE).set(0)
        return CheckResult("unavailable", reason)

    def _available(self) -> None:
        if not self._up:
            log.info("runtime config source available again", extra={"source": SOURCE})
            self.last_error = None
        self._up = True
        self.last_success = time.time()
        metrics.DISCOVERY_SOURCE_UP.labels(SOURCE).set(1)
        metrics.DISCOVERY_LAST_SUCCESS.labels(SOURCE).set(self.last_success)

    def status(self) -> dict[str, Any]:
        """For the dependency map and the instance record."""
        return {
            "source": SOURCE,
            "path": str(self.path),
            "up": self._up,
            "digest": self._digest,
            "last_success": self.last_success,
            "applied_at": self.applied_at,
            "last_error": self.last_error,
            "last_reload": None if self.last_report is None else self.last_report.as_dict(),
        }

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="config-watch")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # never let the watch die: the next look tries again
                log.exception("runtime config reload failed", extra={"path": str(self.path)})

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
