"""HashiCorp Vault / OpenBao (``pip install 'agentfleet-runtime[vault]'``, hvac).

``ref.key`` is a path in the KV mount (``mount_point``, KV v2 by default), e.g.
``agentfleet/openai``; ``ref.property`` a field of it (optional when the secret has one
field or a ``value`` field); ``ref.version`` a KV v2 version number. A key starting with
``/`` is read as a raw API path (``/database/creds/readonly``): dynamic secrets, whose
*lease* gives ``expires_at`` and can be renewed (``sys/leases/renew``).

KV v2 has versions (``metadata``); its secrets have no expiry of their own, so the
convention here is a ``custom_metadata`` entry ``expires_at`` (ISO 8601), which turns on
the expiry alert. Auth: a token (``token`` / ``token_file``, re-read on every login), or the
Kubernetes auth method (``kubernetes_role`` + the pod's service-account token).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from agentfleet_runtime.errors import (
    DependencyAuthError,
    DependencyConnectionError,
    DependencyError,
    DependencyTimeoutError,
    OverloadedError,
    RateLimitedError,
    UpstreamBadRequestError,
    UpstreamServerError,
)
from agentfleet_runtime.secrets.base import (
    SecretProvider,
    SecretRef,
    SecretValue,
    SecretVersion,
    select_field,
)
from agentfleet_runtime.secrets.errors import (
    SecretNotFoundError,
    UnsupportedSecretOperationError,
)
from agentfleet_runtime.secrets.providers._sdk import blocking, blocking_translated, require

SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class VaultSecretProvider(SecretProvider):
    name = "vault"
    supports_versions = True
    supports_renewal = True

    def __init__(
        self,
        url: str,
        *,
        token: SecretStr | None = None,
        token_file: Path | None = None,
        kubernetes_role: str | None = None,
        kubernetes_mount: str = "kubernetes",
        kubernetes_jwt_file: Path = SA_TOKEN,
        mount_point: str = "secret",
        kv_version: int = 2,
        namespace: str | None = None,
        verify: bool | str = True,
        timeout: float = 5.0,
    ) -> None:
        hvac = require("hvac", provider=self.name, extra="vault")
        self._client = hvac.Client(url=url, namespace=namespace, verify=verify, timeout=timeout)
        self._token = token
        self._token_file = token_file
        self._role = kubernetes_role
        self._k8s_mount = kubernetes_mount
        self._jwt_file = kubernetes_jwt_file
        self.mount_point = mount_point
        self.kv_version = kv_version
        self.url = url
        self._login_lock = threading.Lock()
        self._logged_in = False

    def _login(self, *, force: bool = False) -> None:
        with self._login_lock:
            if self._logged_in and not force:
                return
            if self._role:
                jwt = self._jwt_file.read_text(encoding="utf-8").strip()
                self._client.auth.kubernetes.login(
                    role=self._role, jwt=jwt, mount_point=self._k8s_mount
                )
            elif self._token_file is not None:
                self._client.token = self._token_file.read_text(encoding="utf-8").strip()
            elif self._token is not None:
                self._client.token = self._token.get_secret_value()
            self._logged_in = True

    async def get(self, ref: SecretRef) -> SecretValue:
        return await self._call(lambda: self._get(ref), ref)

    def _get(self, ref: SecretRef) -> SecretValue:
        if ref.key.startswith("/"):
            resp = self._client.read(ref.key.lstrip("/"))
            if not resp:
                raise SecretNotFoundError(
                    f"Vault path {ref.key!r} not found", dependency=self.dependency
                )
            return self._leased(ref, resp, resp.get("data") or {})
        if self.kv_version == 1:
            resp = self._client.secrets.kv.v1.read_secret(
                path=ref.key, mount_point=self.mount_point
            )
            return SecretValue(SecretStr(select_field(resp["data"], ref, provider=self.name)))
        resp = self._client.secrets.kv.v2.read_secret_version(
            path=ref.key,
            version=int(ref.version) if ref.version else None,
            mount_point=self.mount_point,
            raise_on_deleted_version=True,
        )
        data = resp["data"]
        meta = data.get("metadata") or {}
        custom = meta.get("custom_metadata") or {}
        return SecretValue(
            value=SecretStr(select_field(data.get("data") or {}, ref, provider=self.name)),
            version=str(meta["version"]) if meta.get("version") is not None else None,
            created_at=_parse_time(meta.get("created_time")),
            expires_at=_parse_time(custom.get("expires_at")),
        )

    def _leased(self, ref: SecretRef, resp: dict[str, Any], data: dict[str, Any]) -> SecretValue:
        duration = int(resp.get("lease_duration") or 0)
        lease_id = resp.get("lease_id") or None
        return SecretValue(
            value=SecretStr(select_field(data, ref, provider=self.name)),
            version=lease_id,
            expires_at=datetime.now(UTC) + timedelta(seconds=duration) if duration else None,
            renewable=bool(resp.get("renewable")) and lease_id is not None,
            lease_id=lease_id,
        )

    async def versions(self, ref: SecretRef) -> list[SecretVersion]:
        if ref.key.startswith("/") or self.kv_version != 2:
            raise UnsupportedSecretOperationError(self.name, "versions (KV v2 only)")

        def call() -> list[SecretVersion]:
            resp = self._client.secrets.kv.v2.read_secret_metadata(
                path=ref.key, mount_point=self.mount_point
            )
            data = resp["data"]
            current = str(data.get("current_version"))
            result = [
                SecretVersion(
                    version=str(n),
                    created_at=_parse_time(v.get("created_time")),
                    enabled=not v.get("destroyed") and not v.get("deletion_time"),
                    current=str(n) == current,
                )
                for n, v in (data.get("versions") or {}).items()
            ]
            return sorted(result, key=lambda v: int(v.version), reverse=True)

        return await self._call(call, ref)

    async def renew(self, ref: SecretRef, current: SecretValue) -> SecretValue:
        if not current.lease_id:
            raise UnsupportedSecretOperationError(self.name, "renewal of a secret without lease")
        lease_id = current.lease_id

        def call() -> SecretValue:
            resp = self._client.sys.renew_lease(lease_id=lease_id)
            duration = int(resp.get("lease_duration") or 0)
            return SecretValue(
                value=current.value,
                version=resp.get("lease_id") or lease_id,
                expires_at=datetime.now(UTC) + timedelta(seconds=duration) if duration else None,
                renewable=bool(resp.get("renewable")),
                lease_id=resp.get("lease_id") or lease_id,
            )

        return await self._call(call, ref)

    async def aclose(self) -> None:
        adapter = getattr(self._client, "adapter", None)
        if adapter is not None:
            await blocking(adapter.close)

    async def _call[T](self, fn: Callable[[], T], ref: SecretRef) -> T:
        from hvac import exceptions as hx

        def attempt() -> T:
            self._login()
            try:
                return fn()
            except hx.Forbidden:
                if not self._role and self._token_file is None:
                    raise
                self._login(force=True)  # expired login: log in again, once
                return fn()

        return await blocking_translated(attempt, lambda exc: self._translate(exc, ref))

    def _translate(self, exc: Exception, ref: SecretRef) -> DependencyError:
        from hvac import exceptions as hx

        dep = self.dependency
        what = f"Vault, secret {ref.key!r}"
        if isinstance(exc, hx.InvalidPath):
            return SecretNotFoundError(f"{what}: not found", dependency=dep)
        if isinstance(exc, hx.Forbidden | hx.Unauthorized):
            return DependencyAuthError(f"{what}: permission denied", dependency=dep)
        if isinstance(exc, hx.RateLimitExceeded):
            return RateLimitedError(f"{what}: rate limited", dependency=dep)
        if isinstance(exc, hx.VaultDown | hx.VaultNotInitialized):
            return OverloadedError(f"{what}: Vault is sealed or down", dependency=dep)
        if isinstance(exc, hx.InternalServerError | hx.BadGateway | hx.UnexpectedError):
            return UpstreamServerError(f"{what}: {type(exc).__name__}", dependency=dep)
        if isinstance(exc, hx.InvalidRequest | hx.ParamValidationError):
            return UpstreamBadRequestError(f"{what}: invalid request", dependency=dep)
        if isinstance(exc, OSError) and "Timeout" in type(exc).__name__:
            return DependencyTimeoutError(f"{what}: timed out", dependency=dep)
        if isinstance(exc, OSError):
            return DependencyConnectionError(f"{what}: unreachable", dependency=dep)
        return DependencyConnectionError(f"{what}: {type(exc).__name__}", dependency=dep)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # Vault gives nanoseconds; Python takes microseconds
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
