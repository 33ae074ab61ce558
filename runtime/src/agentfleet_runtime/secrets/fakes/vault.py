"""A fake Vault HTTP API for ``hvac``: KV v2 (read by version, write, metadata with
``custom_metadata``), one dynamic-secrets path with renewable leases
(``database/creds/<role>``, ``sys/leases/renew``), token and Kubernetes auth."""

from __future__ import annotations

import secrets as _random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class _KVVersion:
    data: dict[str, Any]
    created: datetime
    deleted: bool = False


@dataclass
class _KVSecret:
    versions: list[_KVVersion] = field(default_factory=list)
    custom_metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeVault:
    root_token: str = field(default_factory=lambda: "hvs." + _random.token_urlsafe(24))
    mount: str = "secret"
    kv: dict[str, _KVSecret] = field(default_factory=dict)
    #: Kubernetes auth: role → the service-account JWT it accepts.
    kubernetes_roles: dict[str, str] = field(default_factory=dict)
    lease_seconds: int = 3600
    leases: dict[str, int] = field(default_factory=dict)
    renewals: int = 0
    available: bool = True
    tokens: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.tokens.add(self.root_token)

    def put(self, path: str, data: dict[str, Any]) -> int:
        secret = self.kv.setdefault(path, _KVSecret())
        secret.versions.append(_KVVersion(dict(data), datetime.now(UTC)))
        return len(secret.versions)

    def app(self) -> Starlette:
        m = self.mount
        return Starlette(
            routes=[
                Route("/v1/sys/health", self._health, methods=["GET"]),
                Route("/v1/auth/kubernetes/login", self._k8s_login, methods=["POST", "PUT"]),
                Route("/v1/sys/leases/renew", self._renew, methods=["POST", "PUT"]),
                Route(f"/v1/{m}/data/{{path:path}}", self._kv_read, methods=["GET"]),
                Route(f"/v1/{m}/data/{{path:path}}", self._kv_write, methods=["POST", "PUT"]),
                Route(f"/v1/{m}/metadata/{{path:path}}", self._kv_meta, methods=["GET"]),
                Route(
                    f"/v1/{m}/metadata/{{path:path}}", self._kv_meta_write, methods=["POST", "PUT"]
                ),
                Route("/v1/database/creds/{role}", self._db_creds, methods=["GET"]),
            ]
        )

    def _guard(self, request: Request, *, auth: bool = True) -> Response | None:
        if not self.available:
            return _errors(503, "Vault is sealed")
        if auth and request.headers.get("x-vault-token") not in self.tokens:
            return _errors(403, "permission denied")
        return None

    async def _health(self, request: Request) -> Response:
        if not self.available:
            return _errors(503, "Vault is sealed")
        return JSONResponse({"initialized": True, "sealed": False, "standby": False})

    async def _k8s_login(self, request: Request) -> Response:
        if (denied := self._guard(request, auth=False)) is not None:
            return denied
        body = await request.json()
        if self.kubernetes_roles.get(body.get("role", "")) != body.get("jwt"):
            return _errors(403, "permission denied")
        token = "hvs." + _random.token_urlsafe(24)
        self.tokens.add(token)
        return JSONResponse(
            {"auth": {"client_token": token, "lease_duration": 3600, "renewable": True}}
        )

    async def _kv_read(self, request: Request) -> Response:
        if (denied := self._guard(request)) is not None:
            return denied
        path = request.path_params["path"]
        secret = self.kv.get(path)
        wanted = request.query_params.get("version")
        if secret is None or not secret.versions:
            return _errors(404)
        number = int(wanted) if wanted and wanted != "0" else len(secret.versions)
        if not 1 <= number <= len(secret.versions):
            return _errors(404)
        version = secret.versions[number - 1]
        metadata = {
            "created_time": _ts(version.created),
            "custom_metadata": secret.custom_metadata or None,
            "deletion_time": "",
            "destroyed": False,
            "version": number,
        }
        if version.deleted:
            return JSONResponse({"data": {"data": None, "metadata": metadata}}, status_code=404)
        return JSONResponse(
            {
                "request_id": str(uuid.uuid4()),
                "lease_id": "",
                "renewable": False,
                "lease_duration": 0,
                "data": {"data": version.data, "metadata": metadata},
            }
        )

    async def _kv_write(self, request: Request) -> Response:
        if (denied := self._guard(request)) is not None:
            return denied
        body = await request.json()
        number = self.put(request.path_params["path"], body.get("data") or {})
        return JSONResponse({"data": {"version": number, "created_time": _ts(datetime.now(UTC))}})

    async def _kv_meta(self, request: Request) -> Response:
        if (denied := self._guard(request)) is not None:
            return denied
        secret = self.kv.get(request.path_params["path"])
        if secret is None:
            return _errors(404)
        versions = {
            str(i + 1): {
                "created_time": _ts(v.created),
                "deletion_time": "",
                "destroyed": False,
            }
            for i, v in enumerate(secret.versions)
        }
        return JSONResponse(
            {
                "data": {
                    "current_version": len(secret.versions),
                    "custom_metadata": secret.custom_metadata or None,
                    "versions": versions,
                }
            }
        )

    async def _kv_meta_write(self, request: Request) -> Response:
        if (denied := self._guard(request)) is not None:
            return denied
        body = await request.json()
        secret = self.kv.setdefault(request.path_params["path"], _KVSecret())
        if "custom_metadata" in body:
            secret.custom_metadata = dict(body["custom_metadata"] or {})
        return Response(status_code=204)

    async def _db_creds(self, request: Request) -> Response:
        if (denied := self._guard(request)) is not None:
            return denied
        role = request.path_params["role"]
        lease_id = f"database/creds/{role}/{_random.token_urlsafe(12)}"
        self.leases[lease_id] = self.lease_seconds
        return JSONResponse(
            {
                "lease_id": lease_id,
                "lease_duration": self.lease_seconds,
                "renewable": True,
                "data": {
                    "username": f"v-{role}-{_random.token_hex(4)}",
                    "password": _random.token_urlsafe(20),
                },
            }
        )

    async def _renew(self, request: Request) -> Response:
        if (denied := self._guard(request)) is not None:
            return denied
        body = await request.json()
        lease_id = body.get("lease_id", "")
        if lease_id not in self.leases:
            return _errors(400, "lease not found")
        self.renewals += 1
        return JSONResponse(
            {"lease_id": lease_id, "lease_duration": self.lease_seconds, "renewable": True}
        )


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _errors(status: int, *messages: str) -> JSONResponse:
    return JSONResponse({"errors": list(messages)}, status_code=status)
