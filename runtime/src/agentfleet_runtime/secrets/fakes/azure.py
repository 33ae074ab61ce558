"""A fake Azure Key Vault (secrets API) that the real ``azure-keyvault-secrets`` client
talks to over HTTPS, challenge-based bearer auth included.

Use it with ``SecretClient(url, credential=StaticTokenCredential(token),
verify_challenge_resource=False, connection_verify=<ca file>)`` (the challenge names
``vault.azure.net``, which a loopback URL is not).
"""

from __future__ import annotations

import secrets as _random
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CHALLENGE = (
    'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-'
    '000000000000", resource="https://vault.azure.net"'
)


class AccessToken(NamedTuple):
    token: str
    expires_on: int


class StaticTokenCredential:
    """An azure-core ``TokenCredential`` that hands out one fixed token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


@dataclass
class _Version:
    version: str
    value: str
    created: int
    enabled: bool = True
    exp: int | None = None


@dataclass
class FakeKeyVault:
    token: str = field(default_factory=lambda: _random.token_urlsafe(16))
    secrets: dict[str, list[_Version]] = field(default_factory=dict)
    available: bool = True
    requests: int = 0

    def set(self, name: str, value: str, *, expires: int | None = None) -> str:
        """Add a version (the latest from now on); returns its id."""
        version = _random.token_hex(16)
        self.secrets.setdefault(name, []).append(
            _Version(version, value, int(time.time()), True, expires)
        )
        return version

    def disable(self, name: str, version: str) -> None:
        for v in self.secrets[name]:
            if v.version == version:
                v.enabled = False

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/secrets/{name}/versions", self._versions, methods=["GET"]),
                Route("/secrets/{name}/{version}", self._get, methods=["GET"]),
                Route("/secrets/{name}", self._get, methods=["GET"]),
                Route("/secrets/{name}", self._put, methods=["PUT"]),
            ]
        )

    def _guard(self, request: Request) -> Response | None:
        self.requests += 1
        if not self.available:
            return _error(503, "ServiceUnavailable", "the fake vault is switched off")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {
                    "error": {
                        "code": "Unauthorized",
                        "message": "AKV10000: Request is missing a Bearer or PoP token.",
                    }
                },
                status_code=401,
                headers={"WWW-Authenticate": CHALLENGE},
            )
        return None

    def _bundle(self, request: Request, name: str, v: _Version, *, value: bool) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        attributes: dict[str, Any] = {
            "enabled": v.enabled,
            "created": v.created,
            "updated": v.created,
            "recoveryLevel": "Recoverable+Purgeable",
        }
        if v.exp is not None:
            attributes["exp"] = v.exp
        body: dict[str, Any] = {
            "id": f"{base}/secrets/{name}/{v.version}",
            "attributes": attributes,
        }
        if value:
            body["value"] = v.value
        return body

    async def _get(self, request: Request) -> Response:
        if (denied := self._guard(request)) is not None:
            return denied
        name = request.path_params["name"]
        version = request.path_params.get("version") or ""
        versions = self.secrets.get(name, [])
        found = [v for v in versions if v.version == version] if version else versions[-1:]
        if not found:
            return _error(404, "SecretNotFound", f"A secret with (name/id) {name} was not found")
        if not found[0].enabled:
            return _error(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
        return JSONResponse(self._bundle(request, name, found[0], value=True))

    async def _versions(self, request: Request) -> Response:
        if (denied := self._guard(request)) is not None:
            return denied
        name = request.path_params["name"]
        if name not in self.secrets:
            return _error(404, "SecretNotFound", f"A secret with (name/id) {name} was not found")
        items = [self._bundle(request, name, v, value=False) for v in self.secrets[name]]
        return JSONResponse({"value": items, "nextLink": None})

    async def _put(self, request: Request) -> Response:
        if (denied := self._guard(request)) is not None:
            return denied
        body = await request.json()
        name = request.path_params["name"]
        exp = (body.get("attributes") or {}).get("exp")
        version = self.set(name, body["value"], expires=exp)
        v = next(v for v in self.secrets[name] if v.version == version)
        return JSONResponse(self._bundle(request, name, v, value=True))


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
