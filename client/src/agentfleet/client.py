"""The REST side of the SDK, and the door to the WebSocket side."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import httpx2

from agentfleet._auth import Credentials, TokenProvider
from agentfleet.errors import APIError, AuthenticationError
from agentfleet.models import Agent, BulkResult, Event, Page, Session, TurnResult
from agentfleet.realtime import RealtimeClient

API = "/api/v1"
#: Items per request when the client pages through a whole list.
PAGE_SIZE = 200


class AgentfleetClient:
    """``async with AgentfleetClient("http://host:8000", token=...) as client:``

    ``token_provider`` (a function returning a token, sync or async) is asked again when
    the server says the token is invalid or expired: REST calls retry once with the new
    token, the WebSocket reconnects with it. ``urls``: more base URLs of the same fleet
    (replicas) for the WebSocket to fail over to when no load balancer fronts them.
    ``api_key``: an agentfleet API key (``af_...``), sent as the bearer token on REST and
    in the WebSocket's auth; give it or ``token``, not both.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        token_provider: TokenProvider | None = None,
        urls: list[str] | None = None,
        timeout: float = 60.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.urls = [self.base_url, *(u.rstrip("/") for u in (urls or []))]
        if token is not None and api_key is not None:
            raise ValueError("give token or api_key, not both")
        self.credentials = Credentials(token or api_key, token_provider)
        self._http = httpx2.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AgentfleetClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing -------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        for refresh in (False, True):
            auth = await self.credentials.headers(refresh=refresh)
            response = await self._http.request(
                method, API + path, headers={**headers, **auth}, **kwargs
            )
            if response.status_code != 401 or refresh or not self.credentials.can_refresh:
                break
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"title": response.reason_phrase, "detail": response.text}
            error = AuthenticationError if response.status_code == 401 else APIError
            raise error(response.status_code, problem)
        return response

    async def page[T](
        self,
        path: str,
        model: type[T],
        *,
        limit: int | None = None,
        cursor: str | None = None,
        sort: str | None = None,
        **filters: Any,
    ) -> Page[T]:
        """One page of the list at ``path`` (e.g. ``"/sessions"``): ``filters`` are its
        query parameters (``None`` values left out; ``metadata={"k": "v"}`` becomes
        ``metadata.k=v``)."""
        params: dict[str, Any] = {"limit": limit, "cursor": cursor, "sort": sort}
        for name, value in filters.items():
            if isinstance(value, Mapping):
                params.update({f"{name}.{k}": v for k, v in value.items()})
            else:
                params[name] = value
        query = {k: _param(v) for k, v in params.items() if v is not None}
        body = (await self._request("GET", path, params=query)).json()
        return Page[model](  # type: ignore[valid-type]
            items=body["items"], total=body.get("total", 0), next_cursor=body.get("next_cursor")
        )

    async def iterate[T](
        self, path: str, model: type[T], *, page_size: int = PAGE_SIZE, **options: Any
    ) -> AsyncIterator[T]:
        """Every item of the list at ``path``, page after page (following ``next_cursor``)."""
        cursor: str | None = None
        while True:
            page = await self.page(path, model, limit=page_size, cursor=cursor, **options)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def _all[T](self, path: str, model: type[T], **options: Any) -> list[T]:
        return [item async for item in self.iterate(path, model, **options)]

    # -- agents ---------------------------------------------------------------------------

    async def list_agents(
        self, *, source: str | None = None, sort: str | None = None
    ) -> list[Agent]:
        """Every agent (all pages)."""
        return await self._all("/agents", Agent, source=source, sort=sort)

    def iter_agents(self, **options: Any) -> AsyncIterator[Agent]:
        return self.iterate("/agents", Agent, **options)

    async def create_agents(
        self, agents: list[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> BulkResult:
        """Create many agents (``[{"name", "spec"}]``, up to 100): a result per item."""
        response = await self._request(
            "POST", "/agents/bulk", json={"items": agents}, headers=_idempotency(idempotency_key)
        )
        return BulkResult.model_validate(response.json())

    async def delete_agents(self, names: list[str]) -> BulkResult:
        response = await self._request("POST", "/agents/bulk-delete", json={"names": names})
        return BulkResult.model_validate(response.json())

    async def get_agent(self, name: str) -> Agent:
        return Agent.model_validate((await self._request("GET", f"/agents/{name}")).json())

    async def create_agent(
        self, name: str, spec: dict[str, Any], *, idempotency_key: str | None = None
    ) -> Agent:
        response = await self._request(
            "POST",
            "/agents",
            json={"name": name, "spec": spec},
            headers=_idempotency(idempotency_key),
        )
        return Agent.model_validate(response.json())

    async def delete_agent(self, name: str) -> None:
        await self._request("DELETE", f"/agents/{name}")

    # -- sessions -------------------------------------------------------------------------

    async def create_session(
        self,
        agent: str,
        *,
        title: str | None = None,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Session:
        """With ``idempotency_key`` a retried call returns the session created first."""
        body = {"agent": agent, "title": title, "metadata": metadata or {}}
        response = await self._request(
            "POST", "/sessions", json=body, headers=_idempotency(idempotency_key)
        )
        return Session.model_validate(response.json())

    async def create_sessions(
        self, sessions: list[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> BulkResult:
        """Start many sessions (``[{"agent", "title"?, "metadata"?}]``, up to 100)."""
        response = await self._request(
            "POST",
            "/sessions/bulk",
            json={"items": sessions},
            headers=_idempotency(idempotency_key),
        )
        return BulkResult.model_validate(response.json())

    async def delete_sessions(self, session_ids: list[str]) -> BulkResult:
        response = await self._request("POST", "/sessions/bulk-delete", json={"ids": session_ids})
        return BulkResult.model_validate(response.json())

    async def get_session(self, session_id: str) -> Session:
        return Session.model_validate(
            (await self._request("GET", f"/sessions/{session_id}")).json()
        )

    async def list_sessions(self, *, agent: str | None = None, **filters: Any) -> list[Session]:
        """Every matching session (all pages). ``filters``: ``status``, ``created_after``,
        ``created_before``, ``metadata={"key": "value"}``, ``sort``."""
        return await self._all("/sessions", Session, agent=agent, **filters)

    def iter_sessions(self, **options: Any) -> AsyncIterator[Session]:
        """Sessions page by page, as they are needed (same filters as ``list_sessions``)."""
        return self.iterate("/sessions", Session, **options)

    async def delete_session(self, session_id: str) -> None:
        await self._request("DELETE", f"/sessions/{session_id}")

    async def send_message(
        self, session_id: str, content: str, *, idempotency_key: str | None = None
    ) -> TurnResult:
        """Run a turn and wait for its answer. With ``idempotency_key`` a retried call
        (say, after a timeout) returns the same turn instead of running it again."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = await self._request(
            "POST", f"/sessions/{session_id}/messages", json={"content": content}, headers=headers
        )
        return TurnResult.model_validate(response.json())

    async def messages(self, session_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (
            await self._request("GET", f"/sessions/{session_id}/messages")
        ).json()["items"]
        return items

    async def import_messages(
        self,
        session_id: str,
        messages: list[dict[str, str]],
        *,
        idempotency_key: str | None = None,
    ) -> int:
        """Append ``[{"role": "user"|"assistant", "content"}]`` to the conversation without
        running a turn; returns the conversation's length."""
        response = await self._request(
            "POST",
            f"/sessions/{session_id}/messages/import",
            json={"messages": messages},
            headers=_idempotency(idempotency_key),
        )
        total: int = response.json()["total"]
        return total

    async def events(self, session_id: str, *, after: int = 0) -> list[Event]:
        response = await self._request(
            "GET", f"/sessions/{session_id}/events", params={"after": after}
        )
        return [Event.model_validate(i) for i in response.json()["items"]]

    async def follow_events(self, session_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """The session's events over SSE (for where WebSocket is not an option); resumes
        with ``Last-Event-ID`` when the stream breaks."""
        last = after
        while True:
            headers = {**await self.credentials.headers(), "Last-Event-ID": str(last)}
            try:
                async with self._http.stream(
                    "GET", f"{API}/sessions/{session_id}/events/stream", headers=headers
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise APIError(response.status_code, response.json())
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            event = Event.model_validate(json.loads(line[6:]))
                            if event.id > last:
                                last = event.id
                                yield event
            except httpx2.TransportError:
                continue

    # -- real time ------------------------------------------------------------------------

    def realtime(self, **options: Any) -> RealtimeClient:
        """A WebSocket client (not yet connected: ``async with client.realtime() as rt``)."""
        ws_urls = [u.replace("http", "ws", 1) + API + "/ws" for u in self.urls]
        return RealtimeClient(ws_urls, self.credentials, **options)


def _idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
