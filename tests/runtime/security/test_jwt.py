"""OIDC/JWT bearer tokens, validated against a JWKS served by a local HTTP server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from jwt.algorithms import RSAAlgorithm

from agentfleet_runtime.auth.settings import AuthSettings, JwtSettings
from agentfleet_runtime.testing.servers import running_server

ISSUER = "https://idp.test"
AUDIENCE = "agentfleet"


@pytest.fixture
async def idp() -> AsyncIterator[tuple[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    app = FastAPI()

    @app.get("/jwks.json")
    async def jwks() -> dict[str, Any]:
        return {"keys": [jwk]}

    async with running_server(app) as server:
        yield f"{server.url}/jwks.json", key


def token(key: Any, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300, "iat": now}
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


async def test_jwt_bearer_tokens(make_secure: Any, idp: tuple[str, Any]) -> None:
    url, key = idp
    auth = AuthSettings(mode="jwt", jwt=JwtSettings(jwks_url=url, issuer=ISSUER, audience=AUDIENCE))
    async with make_secure(auth=auth) as rt:

        async def get(tok: str) -> Any:
            return await rt.client.get("/api/v1/sessions", headers=rt.as_(tok))

        ok = await get(token(key, tenant="acme", scope="read"))
        assert ok.status_code == 200, ok.text
        # Scopes from the claim: read cannot create.
        denied = await rt.client.post(
            "/api/v1/sessions",
            json={"agent": "x"},
            headers=rt.as_(token(key, tenant="acme", scope="read")),
        )
        assert denied.status_code == 403
        assert (await get(token(key, tenant="acme", aud="someone-else"))).status_code == 401
        assert (await get(token(key, tenant="acme", iss="https://evil"))).status_code == 401
        expired = await get(token(key, tenant="acme", exp=int(time.time()) - 120))
        assert expired.status_code == 401
        assert expired.json()["type"].endswith("/token-expired")
        # No tenant claim and no default tenant: refused.
        assert (await get(token(key, scope="read"))).status_code == 401
        # Signed by another key: refused.
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert (await get(token(other, tenant="acme"))).status_code == 401
