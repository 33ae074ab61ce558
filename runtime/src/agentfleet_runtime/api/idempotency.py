"""``Idempotency-Key`` on creating POSTs: run once, answer the same to every retry.

A request with the header claims the key in the state backend's
:class:`~agentfleet_runtime.state.idempotency.IdempotencyStore` (atomically: of two
concurrent duplicates one runs, the other gets 409 ``idempotency-key-in-progress``),
runs, and stores its status and body for ``state.idempotency_ttl_seconds``. A retry with
the same key and the same body gets that response again, with ``Idempotent-Replayed:
true``; the same key with another body is 409 ``idempotency-key-reused``. A request that
fails (an error response) releases its key: a retry runs again.

Keys are scoped to tenant + caller (API key id, else subject) + method + path: another
caller's request with the same key is unrelated to it and never sees its response.

Stored responses are **encrypted** (AES-GCM) with a key derived from that scope, which
includes the ``Idempotency-Key`` itself, and the store is addressed by a hash of the
scope: the state backend alone (a Redis dump) can read no stored response — which
matters for ``POST /api-keys``, whose response carries a new key's secret. This is only
as strong as the ``Idempotency-Key`` is hard to guess: send random ones (UUIDs).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Annotated

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import Header, Request, Response
from pydantic import BaseModel

from agentfleet_runtime.auth.base import Principal
from agentfleet_runtime.errors import ConflictError
from agentfleet_runtime.state.base import IdempotencyConflictError
from agentfleet_runtime.state.idempotency import IdempotencyRecord, IdempotencyStore

log = logging.getLogger(__name__)

#: How long a running request holds its key (a replica that dies mid-request frees it).
CLAIM_SECONDS = 300.0
REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Retry with the same key and body: it runs once and the first "
        "response is returned again (with `Idempotent-Replayed: true`). Use a random "
        "value (a UUID).",
    ),
]


class IdempotencyInProgressError(ConflictError):
    """A request with this key is still running (retry after it has finished)."""

    slug = "idempotency-key-in-progress"
    title = "A request with this idempotency key is in progress"


def _scope(request: Request, caller: Principal, key: str) -> bytes:
    parts = [caller.tenant, caller.key_id or caller.subject, request.method, request.url.path, key]
    return "\x00".join(parts).encode()


def _fingerprint(request: Request, body: bytes) -> str:
    """The request's content: its JSON canonicalised (key order and spacing don't
    matter), else its bytes; and its query."""
    try:
        content = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        content = body
    digest = hashlib.sha256(content)
    digest.update(b"\x00" + request.url.query.encode())
    return digest.hexdigest()


def _cipher(scope: bytes) -> AESGCM:
    return AESGCM(hashlib.sha256(b"agentfleet-idempotency-key\x00" + scope).digest())


def _seal(scope: bytes, plain: bytes) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + _cipher(scope).encrypt(nonce, plain, None)).decode()


def _open(scope: bytes, sealed: str) -> bytes:
    raw = base64.b64decode(sealed)
    return _cipher(scope).decrypt(raw[:12], raw[12:], None)


def _store(request: Request) -> IdempotencyStore:
    store: IdempotencyStore = request.app.state.state_backend.idempotency
    return store


async def idempotent[M: BaseModel](
    request: Request,
    response: Response,
    caller: Principal,
    key: str | None,
    model: type[M],
    run: Callable[[], Awaitable[M]],
) -> M:
    """``await run()`` once per ``key`` (no key: every time) and return its result, or
    the stored result of the first run (the route's status set on ``response``)."""
    if key is None:
        return await run()
    store = _store(request)
    scope = _scope(request, caller, key)
    name = hashlib.sha256(b"agentfleet-idempotency-name\x00" + scope).hexdigest()
    fingerprint = _fingerprint(request, await request.body())
    existing = await store.reserve(
        name, IdempotencyRecord(fingerprint=fingerprint), ttl_seconds=CLAIM_SECONDS
    )
    if existing is not None:
        return _replay(existing, fingerprint, scope, key, response, model)
    try:
        result = await run()
    except BaseException:
        try:
            await store.release(name)
        except Exception:  # e.g. Redis went away: the claim expires (CLAIM_SECONDS)
            log.warning("could not release idempotency claim", exc_info=True)
        raise
    route_status = getattr(request.scope.get("route"), "status_code", None)
    status = response.status_code or route_status or 200
    done = IdempotencyRecord(
        fingerprint=fingerprint,
        state="done",
        status=status,
        body=_seal(scope, result.model_dump_json().encode()),
    )
    ttl: int = request.app.state.settings.state.idempotency_ttl_seconds
    try:
        await store.complete(name, done, ttl_seconds=ttl)
    except Exception:  # done is done: answer it (a retry meets the claim until it expires)
        log.warning("could not store the idempotent response", exc_info=True)
    return result


def _replay[M: BaseModel](
    record: IdempotencyRecord,
    fingerprint: str,
    scope: bytes,
    key: str,
    response: Response,
    model: type[M],
) -> M:
    if record.fingerprint != fingerprint:
        raise IdempotencyConflictError(
            "this Idempotency-Key was used with a different request body; use a new key",
            idempotency_key=key,
        )
    if record.state == "pending" or record.body is None:
        raise IdempotencyInProgressError(
            "a request with this Idempotency-Key is still running", retry_after=1
        )
    try:
        body = _open(scope, record.body)
    except (InvalidTag, ValueError) as exc:  # cannot happen unless the store was altered
        raise IdempotencyConflictError(
            "the stored response of this Idempotency-Key cannot be read; use a new key"
        ) from exc
    if record.status is not None:
        response.status_code = record.status
    response.headers[REPLAYED_HEADER] = "true"
    return model.model_validate_json(body)
