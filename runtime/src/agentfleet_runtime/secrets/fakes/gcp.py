"""A fake GCP Secret Manager (REST ``v1``) that the real ``google-cloud-secret-manager``
client talks to with ``transport="rest"`` and ``client_options={"api_endpoint":
"http://127.0.0.1:<port>"}`` (anonymous credentials)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class _Version:
    number: int
    data: bytes
    created: datetime
    state: str = "ENABLED"


@dataclass
class _Secret:
    created: datetime
    expire_time: datetime | None = None
    versions: list[_Version] = field(default_factory=list)


@dataclass
class FakeSecretManager:
    secrets: dict[str, _Secret] = field(default_factory=dict)
    available: bool = True
    requests: int = 0

    def add(self, project: str, secret: str, value: str) -> str:
        """Add a version; returns its number."""
        s = self.secrets.setdefault(f"projects/{project}/secrets/{secret}", _Secret(_now()))
        number = len(s.versions) + 1
        s.versions.append(_Version(number, value.encode("utf-8"), _now()))
        return str(number)

    def set_expiry(self, project: str, secret: str, when: datetime | None) -> None:
        self.secrets[f"projects/{project}/secrets/{secret}"].expire_time = when

    def disable(self, project: str, secret: str, version: str) -> None:
        for v in self.secrets[f"projects/{project}/secrets/{secret}"].versions:
            if str(v.number) == version:
                v.state = "DISABLED"

    def app(self) -> Starlette:
        base = "/v1/projects/{project}/secrets/{secret}"
        return Starlette(
            routes=[
                Route(base + "/versions/{version}:access", self._access, methods=["GET"]),
                Route(base + "/versions", self._list, methods=["GET"]),
                Route(base + ":addVersion", self._add, methods=["POST"]),
                Route(base, self._secret, methods=["GET"]),
            ]
        )

    def _find(self, request: Request) -> tuple[str, _Secret | None]:
        p = request.path_params
        name = f"projects/{p['project']}/secrets/{p['secret']}"
        return name, self.secrets.get(name)

    def _guard(self) -> Response | None:
        self.requests += 1
        if not self.available:
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
        return None

    async def _access(self, request: Request) -> Response:
        if (down := self._guard()) is not None:
            return down
        name, secret = self._find(request)
        wanted = request.path_params["version"]
        if secret is None:
            return _error(404, "NOT_FOUND", f"Secret [{name}] not found or has no versions.")
        enabled = [v for v in secret.versions if v.state == "ENABLED"]
        if wanted == "latest":
            found = enabled[-1:]
        else:
            found = [v for v in secret.versions if str(v.number) == wanted]
            if found and found[0].state != "ENABLED":
                return _error(
                    400, "FAILED_PRECONDITION", f"{name}/versions/{wanted} is in DISABLED state."
                )
        if not found:
            return _error(404, "NOT_FOUND", f"Secret Version [{name}/versions/{wanted}] not found.")
        v = found[0]
        return JSONResponse(
            {
                "name": f"{name}/versions/{v.number}",
                "payload": {"data": base64.b64encode(v.data).decode("ascii")},
            }
        )

    async def _list(self, request: Request) -> Response:
        if (down := self._guard()) is not None:
            return down
        name, secret = self._find(request)
        if secret is None:
            return _error(404, "NOT_FOUND", f"Secret [{name}] not found.")
        versions = [
            {"name": f"{name}/versions/{v.number}", "createTime": _ts(v.created), "state": v.state}
            for v in reversed(secret.versions)
        ]
        return JSONResponse({"versions": versions, "totalSize": len(versions)})

    async def _secret(self, request: Request) -> Response:
        if (down := self._guard()) is not None:
            return down
        name, secret = self._find(request)
        if secret is None:
            return _error(404, "NOT_FOUND", f"Secret [{name}] not found.")
        body: dict[str, Any] = {
            "name": name,
            "createTime": _ts(secret.created),
            "replication": {"automatic": {}},
        }
        if secret.expire_time is not None:
            body["expireTime"] = _ts(secret.expire_time)
        return JSONResponse(body)

    async def _add(self, request: Request) -> Response:
        if (down := self._guard()) is not None:
            return down
        name, secret = self._find(request)
        if secret is None:
            return _error(404, "NOT_FOUND", f"Secret [{name}] not found.")
        body = await request.json()
        data = base64.b64decode(body["payload"]["data"])
        number = len(secret.versions) + 1
        secret.versions.append(_Version(number, data, _now()))
        return JSONResponse(
            {"name": f"{name}/versions/{number}", "createTime": _ts(_now()), "state": "ENABLED"}
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(code: int, status: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "status": status}}, status_code=code
    )
