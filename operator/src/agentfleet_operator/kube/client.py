"""A small async client for the Kubernetes API: the only code that talks to the API server
(besides kopf's own watching and status patching).

It uses the very credentials kopf logs in with (a :class:`kopf.ConnectionInfo`), over
aiohttp, which kopf already depends on. Created once in the startup handler, closed in the
cleanup handler; re-pointed by the login handler when credentials change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import kopf

from agentfleet_operator.kube.errors import KubeError, NotFoundError, error_for
from agentfleet_operator.kube.resources import ApiResource

MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"
USER_AGENT = "agentfleet-operator"


#: Called after every request: (method, HTTP status or 0, seconds).
RequestObserver = Callable[[str, int, float], None]


class KubeClient:
    """Every call is bounded by ``request_timeout`` seconds (connect included): a slow or
    dead API server fails the reconcile, which is retried, instead of stalling a worker."""

    def __init__(
        self,
        *,
        request_timeout: float = 30.0,
        observer: RequestObserver | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self._user_agent = user_agent
        self._connection: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, connect=request_timeout)
        self._observer = observer

    @property
    def connected(self) -> bool:
        return self._session is not None

    async def connect(self, connection: kopf.ConnectionInfo) -> None:
        """Use these credentials from now on (the login handler calls this)."""
        if self._session is not None and connection == self._connection:
            return
        old = self._session
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=connection.as_ssl_context()),
            headers={**connection.as_http_headers(), "User-Agent": self._user_agent},
            timeout=self._timeout,
            trust_env=bool(connection.trust_env),
        )
        self._connection = connection
        if old is not None:
            await old.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = JSON,
    ) -> dict[str, Any]:
        if self._session is None or self._connection is None:
            raise KubeError(0, "NotConnected", "the API client has no credentials yet")
        url = self._connection.server.rstrip("/") + path
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        started = time.monotonic()
        status = 0
        try:
            async with self._session.request(method, url, data=data, headers=headers) as response:
                status = response.status
                text = await response.text()
                if response.status >= 400:
                    raise _error_from(response.status, text)
                payload = json.loads(text) if text else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, type(exc).__name__, str(exc) or repr(exc)) from exc
        except json.JSONDecodeError as exc:
            raise KubeError(0, "InvalidResponse", f"{method} {path}: {exc}") from exc
        finally:
            if self._observer is not None:
                self._observer(method, status, time.monotonic() - started)
        return payload if isinstance(payload, dict) else {"items": payload}

    async def get_path(self, path: str) -> dict[str, Any]:
        """GET any API path (discovery: ``/apis``, ``/apis/<group>/<version>``)."""
        return await self._request("GET", path)

    async def get(self, resource: ApiResource, namespace: str | None, name: str) -> dict[str, Any]:
        return await self._request("GET", resource.path(namespace, name))

    async def get_or_none(
        self, resource: ApiResource, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        try:
            return await self.get(resource, namespace, name)
        except NotFoundError:
            return None

    async def list_objects(
        self, resource: ApiResource, namespace: str | None
    ) -> list[dict[str, Any]]:
        payload = await self._request("GET", resource.path(namespace))
        return list(payload.get("items") or [])

    async def create(
        self, resource: ApiResource, namespace: str | None, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._request("POST", resource.path(namespace), body=dict(body))

    async def patch(
        self,
        resource: ApiResource,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386): dicts merge, lists are replaced, ``None`` deletes."""
        return await self._request(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=dict(patch),
            content_type=MERGE_PATCH,
        )

    async def delete(self, resource: ApiResource, namespace: str | None, name: str) -> None:
        await self._request(
            "DELETE",
            resource.path(namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
        )


def _error_from(status: int, text: str) -> KubeError:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and payload.get("kind") == "Status":
        return error_for(status, str(payload.get("reason") or status), str(payload.get("message")))
    return error_for(status, "HTTPError", text[:500])
