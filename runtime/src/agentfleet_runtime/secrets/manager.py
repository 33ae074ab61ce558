"""The secret manager: access control, a TTL cache with max-stale, validation, rotation
notifications, readiness, versions/rollback and expiry handling, over any number of
:class:`~agentfleet_runtime.secrets.base.SecretProvider` s.

How a read goes (:meth:`SecretManager.get`)::

    consumer bound to the secret? ── no ──► denied: audit + metric + SecretAccessDeniedError
        │ yes
    cached value younger than its TTL? ── yes ──► serve it
        │ no
    read the provider (one read at a time per secret)
        ├─ ok, same value ──────────────► confirm (age 0), serve
        ├─ ok, new value ─ validators ──► ok: swap, notify subscribers, serve the new value
        │                            └──► fail: alert event, keep the old value (if any)
        └─ provider error ─ last good value younger than max-stale?
                               ├─ yes ──► serve it (stale): metric + log
                               └─ no ───► SecretUnavailableError

A background loop (:meth:`start`) refreshes every secret before its TTL runs out, retries
the ones that have not resolved, reacts at once to providers that can watch (mounted
Kubernetes Secrets), renews values nearing expiry where the provider can, and alerts before
expiry where it cannot. Values are held as ``SecretStr`` and registered with the
:class:`~agentfleet_runtime.secrets.redaction.Redactor` the moment they are read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
import logging
import secrets as _random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import SecretStr

from agentfleet_runtime.audit import AuditLog
from agentfleet_runtime.errors import DependencyError
from agentfleet_runtime.secrets import metrics
from agentfleet_runtime.secrets.base import (
    SecretProvider,
    SecretRef,
    SecretValue,
    SecretVersion,
)
from agentfleet_runtime.secrets.catalog import SecretCatalog, SecretSpec
from agentfleet_runtime.secrets.errors import (
    SecretAccessDeniedError,
    SecretNotFoundError,
    SecretUnavailableError,
    SecretValidationError,
    UnsupportedSecretOperationError,
)
from agentfleet_runtime.secrets.redaction import REDACTOR, Redactor
from agentfleet_runtime.secrets.validation import Validator, non_empty

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SecretManagerOptions:
    #: Re-read a secret this often unless its spec says otherwise (binding refreshInterval).
    default_ttl_seconds: float = 300.0
    #: Serve the last good value at most this long after the provider last confirmed it.
    max_stale_seconds: float = 3600.0
    #: Alert this long before a secret expires when it cannot be renewed.
    expiry_warning_seconds: float = 3 * 86400.0
    #: Try to renew renewable secrets this long before they expire.
    renew_before_seconds: float = 86400.0
    #: How often the background loop wakes up.
    tick_seconds: float = 5.0
    #: How soon to retry a secret that failed to resolve (or to renew).
    retry_seconds: float = 10.0
    #: Previous values kept in memory for rollback when the provider has no versions.
    history: int = 5


@dataclass(frozen=True, slots=True)
class SecretUpdate:
    """A new value was taken into use (``reason``: rotated, renewed, rolled_back,
    unpinned). ``previous`` lets a client retire what it built with the old value."""

    name: str
    value: SecretStr
    version: str | None
    previous: SecretStr | None
    previous_version: str | None
    reason: str


Subscriber = Callable[[SecretUpdate], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class SecretStatus:
    """What may be shown about a secret: never its value."""

    name: str
    provider: str
    required: bool
    loaded: bool
    version: str | None
    age_seconds: float | None
    stale: bool
    expires_at: datetime | None
    pinned: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    #: Required secrets without a usable value, with the last error class (or "pending").
    missing: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Entry:
    spec: SecretSpec
    provider: SecretProvider
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    current: SecretValue | None = None
    fingerprint: bytes | None = None
    generation: int = 0
    confirmed_at: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None
    degraded: bool = False
    #: Provider version served instead of the latest (rollback), or "" when frozen on a
    #: value from local history (providers without versions).
    pinned: str | None = None
    history: deque[tuple[SecretValue, bytes]] = field(default_factory=deque)
    rejected: set[bytes] = field(default_factory=set)
    expiry_alerted: tuple[int, bool] | None = None
    renew_after: float = 0.0


class SecretManager:
    """Serves the secrets of a :class:`SecretCatalog` to the consumers bound to them."""

    def __init__(
        self,
        catalog: SecretCatalog,
        providers: Mapping[str, SecretProvider],
        *,
        options: SecretManagerOptions | None = None,
        validators: Mapping[str, Sequence[Validator]] | None = None,
        audit: AuditLog | None = None,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        missing = sorted(catalog.providers() - set(providers))
        if missing:
            raise ValueError(f"no secret provider configured for: {', '.join(missing)}")
        self.catalog = catalog
        self.providers = dict(providers)
        self.options = options or SecretManagerOptions()
        self.audit = audit or AuditLog()
        self.redactor = redactor or REDACTOR
        self._clock = clock
        self._now = now
        self._validators: dict[str, list[Validator]] = {
            name: list(v) for name, v in (validators or {}).items()
        }
        self._entries = {spec.name: _Entry(spec, self.providers[spec.provider]) for spec in catalog}
        self._subscribers: dict[str, list[Subscriber]] = {}
        self._audited_reads: set[tuple[str, str, int]] = set()
        self._fingerprint_key = _random.token_bytes(32)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._update_ready_gauge()

    def __repr__(self) -> str:
        return f"<SecretManager {len(self._entries)} secrets ready={self.ready}>"

    # ------------------------------------------------------------------ access

    def _authorize(self, name: str, consumer: str, action: str = "read") -> _Entry:
        entry = self._entries.get(name)
        if entry is None or not entry.spec.allows(consumer):
            metrics.ACCESS_DENIED.labels(name, consumer).inc()
            metrics.SECRET_READS.labels(name, consumer, "denied").inc()
            self.audit.record(
                "secret.access_denied",
                "denied",
                level=logging.WARNING,
                secret=name,
                consumer=consumer,
                operation=action,
                reason="unknown secret" if entry is None else "consumer not bound",
                binding=entry.spec.binding if entry else None,
                alert=True,
            )
            raise SecretAccessDeniedError(name, consumer)
        return entry

    def allowed(self, name: str, consumer: str) -> bool:
        """Whether ``consumer`` may read ``name`` (no audit: for planning, not access)."""
        entry = self._entries.get(name)
        return entry is not None and entry.spec.allows(consumer)

    # ------------------------------------------------------------------ reads

    async def get(self, name: str, *, consumer: str) -> SecretStr:
        """The value of ``name`` for ``consumer``; see the module docstring."""
        return (await self.get_value(name, consumer=consumer)).value

    async def get_value(self, name: str, *, consumer: str) -> SecretValue:
        """Like :meth:`get`, with the version and expiry metadata."""
        entry = self._authorize(name, consumer)
        if not self._fresh(entry):
            try:
                await self._refresh(entry)
            except SecretNotFoundError:
                metrics.SECRET_READS.labels(name, consumer, "unavailable").inc()
                raise
            except (DependencyError, SecretValidationError) as exc:
                if not self._servable(entry):
                    metrics.SECRET_READS.labels(name, consumer, "unavailable").inc()
                    raise SecretUnavailableError(
                        name,
                        f"{type(exc).__name__} and no value within max-stale "
                        f"({self.options.max_stale_seconds:g}s)",
                        dependency=entry.provider.dependency,
                    ) from exc
        return self._serve(entry, consumer)

    def get_cached(self, name: str, *, consumer: str) -> SecretStr:
        """The cached value, without I/O (for synchronous callers such as the model
        provider pool); the background loop keeps it fresh. Access control, audit, metrics
        and max-stale apply as for :meth:`get`."""
        entry = self._authorize(name, consumer)
        if not self._servable(entry):
            metrics.SECRET_READS.labels(name, consumer, "unavailable").inc()
            raise SecretUnavailableError(
                name,
                "not resolved yet" if entry.current is None else "older than max-stale",
                dependency=entry.provider.dependency,
            )
        return self._serve(entry, consumer).value

    def _serve(self, entry: _Entry, consumer: str) -> SecretValue:
        assert entry.current is not None
        name = entry.spec.name
        fresh = self._fresh(entry)
        metrics.SECRET_READS.labels(name, consumer, "fresh" if fresh else "stale").inc()
        if not fresh:
            metrics.STALE_SERVED.labels(name).inc()
        key = (consumer, name, entry.generation)
        if key not in self._audited_reads:
            self._audited_reads.add(key)
            self.audit.record(
                "secret.read",
                "allowed",
                secret=name,
                consumer=consumer,
                version=entry.current.version,
                binding=entry.spec.binding,
            )
        return entry.current

    def _age(self, entry: _Entry) -> float | None:
        if entry.confirmed_at is None:
            return None
        return self._clock() - entry.confirmed_at

    def _ttl(self, entry: _Entry) -> float:
        return entry.spec.refresh_seconds or self.options.default_ttl_seconds

    def _fresh(self, entry: _Entry) -> bool:
        if entry.current is None:
            return False
        if entry.pinned == "":
            return True
        age = self._age(entry)
        return age is not None and age < self._ttl(entry)

    def _servable(self, entry: _Entry) -> bool:
        if entry.current is None:
            return False
        if entry.pinned == "":
            return True
        age = self._age(entry)
        return age is not None and age <= self.options.max_stale_seconds

    # ------------------------------------------------------------------ loading

    def _fingerprint(self, value: SecretValue) -> bytes:
        return hmac.new(
            self._fingerprint_key, value.reveal().encode("utf-8"), hashlib.sha256
        ).digest()

    async def _read(self, entry: _Entry, ref: SecretRef) -> SecretValue:
        provider = entry.provider
        try:
            value = await provider.get(ref)
        except DependencyError as exc:
            entry.last_error = type(exc).__name__
            metrics.PROVIDER_ERRORS.labels(provider.name, entry.spec.name, entry.last_error).inc()
            self._note_failure(entry, exc)
            raise
        # Registered before validation: a rejected value is a secret too.
        self.redactor.register(value.value, owner=entry.spec.name)
        return value

    def _note_failure(self, entry: _Entry, exc: DependencyError) -> None:
        name = entry.spec.name
        if isinstance(exc, SecretNotFoundError):
            log.error(
                "secret not found in its provider",
                extra={"event_type": "secret.not_found", "secret": name, "alert": True},
            )
            return
        if entry.current is not None and not entry.degraded and self._servable(entry):
            entry.degraded = True
            log.warning(
                "secret provider unavailable; serving the last good value within max-stale",
                extra={
                    "event_type": "secret.serving_stale",
                    "secret": name,
                    "provider": entry.provider.name,
                    "error": type(exc).__name__,
                    "age_seconds": round(self._age(entry) or 0.0, 3),
                    "max_stale_seconds": self.options.max_stale_seconds,
                },
            )
        elif entry.current is not None and not self._servable(entry):
            log.error(
                "secret provider unavailable and the last good value is past max-stale",
                extra={
                    "event_type": "secret.unavailable",
                    "secret": name,
                    "provider": entry.provider.name,
                    "error": type(exc).__name__,
                    "alert": True,
                },
            )

    async def _refresh(self, entry: _Entry, *, force: bool = False) -> SecretUpdate | None:
        """Read the provider and take a new valid value into use; notifies subscribers."""
        async with entry.lock:
            if not force and self._fresh(entry):
                return None
            if entry.pinned == "":
                entry.confirmed_at = self._clock()
                return None
            ref = entry.spec.ref.at(entry.pinned) if entry.pinned else entry.spec.ref
            entry.last_attempt = self._clock()
            value = await self._read(entry, ref)
            update = self._accept(entry, value, "rotated")
        if update is not None:
            await self._notify(update)
        return update

    def _validate(self, entry: _Entry, value: SecretValue, fingerprint: bytes) -> None:
        name = entry.spec.name
        checks = [non_empty, *self._validators.get(name, ())]
        for check in checks:
            try:
                ok = check(value.reveal())
            except (ValueError, SecretValidationError) as exc:
                reason = exc.reason if isinstance(exc, SecretValidationError) else str(exc)
            else:
                if ok is not False:
                    continue
                reason = "rejected by its validator"
            reason = self.redactor.redact(reason)
            metrics.VALIDATION_FAILURES.labels(name).inc()
            entry.last_error = SecretValidationError.__name__
            first = fingerprint not in entry.rejected
            entry.rejected.add(fingerprint)
            log.log(
                logging.ERROR if first else logging.WARNING,
                "secret failed validation; keeping the previous value",
                extra={
                    "event_type": "secret.validation_failed",
                    "secret": name,
                    "version": value.version,
                    "reason": reason,
                    "kept_version": entry.current.version if entry.current else None,
                    "has_previous": entry.current is not None,
                    "alert": True,
                },
            )
            raise SecretValidationError(name, reason)

    def _accept(self, entry: _Entry, value: SecretValue, reason: str) -> SecretUpdate | None:
        now = self._clock()
        fingerprint = self._fingerprint(value)
        if entry.current is not None and fingerprint == entry.fingerprint:
            entry.current = value if value.version == entry.current.version else entry.current
            self._confirmed(entry, now, value)
            return None
        self._validate(entry, value, fingerprint)
        previous = entry.current
        if previous is not None and entry.fingerprint is not None:
            entry.history.append((previous, entry.fingerprint))
            while len(entry.history) > self.options.history:
                entry.history.popleft()
        entry.current, entry.fingerprint = value, fingerprint
        entry.generation += 1
        entry.expiry_alerted = None
        entry.renew_after = 0.0
        self._confirmed(entry, now, value)
        if previous is None:
            log.info(
                "secret resolved",
                extra={
                    "event_type": "secret.resolved",
                    "secret": entry.spec.name,
                    "version": value.version,
                },
            )
            return None
        metrics.ROTATIONS.labels(entry.spec.name, reason).inc()
        log.info(
            "secret changed",
            extra={
                "event_type": f"secret.{reason}",
                "secret": entry.spec.name,
                "version": value.version,
                "previous_version": previous.version,
            },
        )
        return SecretUpdate(
            name=entry.spec.name,
            value=value.value,
            version=value.version,
            previous=previous.value,
            previous_version=previous.version,
            reason=reason,
        )

    def _confirmed(self, entry: _Entry, now: float, value: SecretValue) -> None:
        entry.confirmed_at = now
        entry.last_error = None
        if entry.degraded:
            entry.degraded = False
            log.info(
                "secret provider recovered",
                extra={"event_type": "secret.provider_recovered", "secret": entry.spec.name},
            )
        if value.expires_at is not None:
            metrics.EXPIRY_TIMESTAMP.labels(entry.spec.name).set(value.expires_at.timestamp())
        self._update_ready_gauge()

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, name: str, callback: Subscriber, *, consumer: str) -> Callable[[], None]:
        """Call ``callback`` with a :class:`SecretUpdate` whenever ``name`` takes a new
        value (``consumer`` must be allowed to read it). Returns an unsubscribe function.
        A callback that raises is logged; the others still run."""
        self._authorize(name, consumer, "subscribe")
        self._subscribers.setdefault(name, []).append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.get(name, []).remove(callback)

        return unsubscribe

    async def _notify(self, update: SecretUpdate) -> None:
        for callback in list(self._subscribers.get(update.name, ())):
            try:
                result = callback(update)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                log.error(
                    "secret subscriber failed",
                    extra={
                        "event_type": "secret.subscriber_failed",
                        "secret": update.name,
                        "error": type(exc).__name__,
                    },
                )

    def add_validator(self, name: str, validator: Validator) -> None:
        self._validators.setdefault(name, []).append(validator)

    # ------------------------------------------------------------------ readiness

    def readiness(self) -> Readiness:
        missing = {
            name: entry.last_error or "pending"
            for name, entry in self._entries.items()
            if entry.spec.required and not self._servable(entry)
        }
        return Readiness(ready=not missing, missing=missing)

    @property
    def ready(self) -> bool:
        return self.readiness().ready

    def _update_ready_gauge(self) -> None:
        metrics.SECRETS_READY.set(1 if self.ready else 0)

    async def load_all(self) -> Readiness:
        """Resolve every secret once (concurrently); failures are logged, not raised."""
        await asyncio.gather(*(self._try_refresh(e) for e in self._entries.values()))
        return self.readiness()

    async def wait_ready(self, within_seconds: float) -> Readiness:
        """Retry the missing required secrets until all resolve or ``within_seconds`` pass."""
        deadline = self._clock() + within_seconds
        readiness = await self.load_all()
        while not readiness.ready and self._clock() < deadline:
            await asyncio.sleep(min(self.options.retry_seconds, 0.5))
            missing = [self._entries[n] for n in readiness.missing]
            await asyncio.gather(*(self._try_refresh(e) for e in missing))
            readiness = self.readiness()
        return readiness

    async def _try_refresh(self, entry: _Entry, *, force: bool = False) -> None:
        try:
            await self._refresh(entry, force=force)
        except (DependencyError, SecretValidationError) as exc:
            if entry.current is None:
                log.warning(
                    "secret not resolved",
                    extra={
                        "event_type": "secret.unresolved",
                        "secret": entry.spec.name,
                        "provider": entry.provider.name,
                        "error": type(exc).__name__,
                    },
                )
        finally:
            self._update_ready_gauge()
            age = self._age(entry)
            if age is not None:
                metrics.SECRET_AGE.labels(entry.spec.name).set(age)

    # ------------------------------------------------------------------ hot reload

    async def adopt(
        self, catalog: SecretCatalog, providers: Mapping[str, SecretProvider] | None = None
    ) -> dict[str, list[str]]:
        """Serve ``catalog`` from now on (a runtime config reload changed the secret
        bindings): secrets that appeared are read at once, ones whose provider or
        reference changed are re-read, ones that left are forgotten (with their
        subscribers); a secret whose grants or refresh interval changed keeps its value.
        ``providers``: new providers the catalog needs. Answers the names ``added``,
        ``changed`` and ``removed``."""
        for name, provider in (providers or {}).items():
            self.providers.setdefault(name, provider)
        missing = sorted(catalog.providers() - set(self.providers))
        if missing:
            raise ValueError(f"no secret provider configured for: {', '.join(missing)}")
        added: list[str] = []
        changed: list[str] = []
        fresh: list[_Entry] = []
        entries: dict[str, _Entry] = {}
        for spec in catalog:
            entry = self._entries.get(spec.name)
            if entry is not None and (entry.spec.provider, entry.spec.ref) == (
                spec.provider,
                spec.ref,
            ):
                if entry.spec != spec:
                    entry.spec = spec  # grants, refresh interval, binding: same value
                    changed.append(spec.name)
                entries[spec.name] = entry
                continue
            entries[spec.name] = _Entry(spec, self.providers[spec.provider])
            fresh.append(entries[spec.name])
            (changed if entry is not None else added).append(spec.name)
        removed = sorted(set(self._entries) - set(entries))
        for name in removed:
            self._subscribers.pop(name, None)
        self._entries = entries
        self.catalog = catalog
        await asyncio.gather(*(self._try_refresh(entry, force=True) for entry in fresh))
        self._update_ready_gauge()
        return {"added": sorted(added), "changed": sorted(changed), "removed": removed}

    # ------------------------------------------------------------------ background

    async def start(self) -> Readiness:
        """Resolve all secrets once, then keep them fresh in the background (refresh,
        watches, expiry). Returns the readiness after the first pass."""
        readiness = await self.load_all()
        self._stopping.clear()
        self._tasks.append(asyncio.create_task(self._run(), name="secrets-refresh"))
        by_provider: dict[str, list[_Entry]] = {}
        for entry in self._entries.values():
            if entry.provider.supports_watch:
                by_provider.setdefault(entry.spec.provider, []).append(entry)
        for provider_name, entries in by_provider.items():
            self._tasks.append(
                asyncio.create_task(self._watch(entries), name=f"secrets-watch-{provider_name}")
            )
        return readiness

    async def aclose(self) -> None:
        """Stop the background work and close the providers."""
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(p.aclose() for p in self.providers.values()), return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("secret refresh loop failed", extra={"event_type": "secret.loop"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.options.tick_seconds)

    async def tick(self) -> None:
        """One pass of the background loop: refresh what is due, retry what failed, and
        handle expiry. Tests call it directly with a fake clock."""
        now = self._clock()
        due = []
        for entry in self._entries.values():
            age = self._age(entry)
            if entry.current is None or (age is not None and age >= self._ttl(entry) * 0.9):
                last = entry.last_attempt
                if last is None or now - last >= min(self.options.retry_seconds, self._ttl(entry)):
                    due.append(entry)
        await asyncio.gather(*(self._try_refresh(e, force=True) for e in due))
        for entry in list(self._entries.values()):
            await self._check_expiry(entry)
        self._update_ready_gauge()

    async def _watch(self, entries: list[_Entry]) -> None:
        provider = entries[0].provider
        by_ref: dict[SecretRef, list[_Entry]] = {}
        for entry in entries:
            by_ref.setdefault(entry.spec.ref, []).append(entry)
        try:
            async for changed in provider.watch(list(by_ref)):
                for ref in changed:
                    for entry in by_ref.get(ref, ()):
                        await self._try_refresh(entry, force=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "secret watch stopped; falling back to periodic refresh",
                extra={"event_type": "secret.watch_failed", "provider": provider.name},
            )

    # ------------------------------------------------------------------ expiry

    async def _check_expiry(self, entry: _Entry) -> None:
        current = entry.current
        if current is None or current.expires_at is None:
            return
        name = entry.spec.name
        remaining = (current.expires_at - self._now()).total_seconds()
        provider = entry.provider
        if (
            remaining <= self.options.renew_before_seconds
            and provider.supports_renewal
            and current.renewable
            and self._clock() >= entry.renew_after
        ) and await self._renew(entry, current):
            return
        if remaining > self.options.expiry_warning_seconds:
            return
        expired = remaining <= 0
        if entry.expiry_alerted == (entry.generation, expired):
            return
        entry.expiry_alerted = (entry.generation, expired)
        metrics.EXPIRY_ALERTS.labels(name).inc()
        log.error(
            "secret has expired" if expired else "secret expires soon and was not renewed",
            extra={
                "event_type": "secret.expired" if expired else "secret.expiring",
                "secret": name,
                "version": current.version,
                "expires_at": current.expires_at.isoformat(),
                "remaining_seconds": round(remaining),
                "renewable": provider.supports_renewal and current.renewable,
                "alert": True,
            },
        )

    async def _renew(self, entry: _Entry, current: SecretValue) -> bool:
        name = entry.spec.name
        try:
            async with entry.lock:
                renewed = await entry.provider.renew(entry.spec.ref, current)
                self.redactor.register(renewed.value, owner=name)
                update = self._accept(entry, renewed, "renewed")
        except (DependencyError, SecretValidationError, UnsupportedSecretOperationError) as exc:
            entry.renew_after = self._clock() + self.options.retry_seconds
            metrics.RENEWALS.labels(name, "failed").inc()
            self.audit.record(
                "secret.renewed",
                "failed",
                level=logging.ERROR,
                secret=name,
                error=type(exc).__name__,
            )
            return False
        metrics.RENEWALS.labels(name, "ok").inc()
        self.audit.record(
            "secret.renewed",
            "ok",
            secret=name,
            version=entry.current.version if entry.current else None,
            expires_at=renewed.expires_at.isoformat() if renewed.expires_at else None,
        )
        if update is not None:
            await self._notify(update)
        return True

    # ------------------------------------------------------------------ versions

    async def versions(self, name: str, *, consumer: str) -> list[SecretVersion]:
        """The provider's versions of ``name`` (newest first), or the versions held in
        memory when the provider keeps none."""
        entry = self._authorize(name, consumer, "versions")
        if entry.provider.supports_versions:
            return await entry.provider.versions(entry.spec.ref)
        held = [v for v, _ in reversed(entry.history)]
        if entry.current is not None:
            held.insert(0, entry.current)
        return [
            SecretVersion(version=v.version or f"local-{i}", created_at=v.created_at)
            for i, v in enumerate(held)
        ]

    async def rollback(
        self, name: str, *, consumer: str, version: str | None = None
    ) -> SecretStatus:
        """Serve an earlier value of ``name`` — ``version`` or the one before the current
        — and keep serving it (pinned) until :meth:`unpin`. Uses the provider's versions
        where it has them, else the values held in memory. The value is validated and
        subscribers are notified; the rollback is audited."""
        entry = self._authorize(name, consumer, "rollback")
        async with entry.lock:
            current = entry.current
            if entry.provider.supports_versions:
                if version is None:
                    listed = await entry.provider.versions(entry.spec.ref)
                    version = _previous_version(listed, current.version if current else None)
                value = await self._read(entry, entry.spec.ref.at(version))
                pin = value.version or version
            else:
                value = _from_history(entry, version, entry.provider.name)
                pin = ""
            update = self._accept(entry, value, "rolled_back")
            entry.pinned = pin
        self.audit.record(
            "secret.rolled_back",
            "ok",
            secret=name,
            consumer=consumer,
            version=value.version,
            previous_version=current.version if current else None,
        )
        if update is not None:
            await self._notify(update)
        return self.status(name)

    async def unpin(self, name: str, *, consumer: str) -> SecretStatus:
        """Follow the provider's latest value again after a rollback."""
        entry = self._authorize(name, consumer, "unpin")
        entry.pinned = None
        self.audit.record("secret.unpinned", "ok", secret=name, consumer=consumer)
        await self._refresh(entry, force=True)
        return self.status(name)

    async def refresh(self, name: str | None = None) -> None:
        """Re-read ``name`` (or every secret) now, e.g. from an admin endpoint."""
        entries = [self._entries[name]] if name else list(self._entries.values())
        await asyncio.gather(*(self._try_refresh(e, force=True) for e in entries))

    # ------------------------------------------------------------------ status

    def status(self, name: str) -> SecretStatus:
        entry = self._entries[name]
        current = entry.current
        age = self._age(entry)
        return SecretStatus(
            name=name,
            provider=entry.provider.name,
            required=entry.spec.required,
            loaded=current is not None,
            version=current.version if current else None,
            age_seconds=age,
            stale=current is not None and not self._fresh(entry),
            expires_at=current.expires_at if current else None,
            pinned=entry.pinned,
            last_error=entry.last_error,
        )

    def statuses(self) -> list[SecretStatus]:
        return [self.status(n) for n in sorted(self._entries)]

    def names(self) -> Iterable[str]:
        return self._entries.keys()


def _previous_version(listed: list[SecretVersion], current: str | None) -> str:
    enabled = [v for v in listed if v.enabled]
    for i, v in enumerate(enabled):
        if v.version == current and i + 1 < len(enabled):
            return enabled[i + 1].version
    older = [v for v in enabled if v.version != current]
    if not older:
        raise UnsupportedSecretOperationError("secrets", "rollback: no earlier version")
    return older[0].version


def _from_history(entry: _Entry, version: str | None, provider: str) -> SecretValue:
    for value, _ in reversed(entry.history):
        if version is None or value.version == version:
            return value
    raise UnsupportedSecretOperationError(
        provider,
        "rollback: no earlier value held in memory"
        if version is None
        else f"rollback to version {version!r}: not held in memory",
    )
