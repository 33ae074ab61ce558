"""The REST side of the SDK, and the door to the WebSocket side."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2

from agentfleet._auth import Credentials, TokenProvider
from agentfleet.errors import APIError, AuthenticationError
from agentfleet.models import Agent, Event, Session, TurnResult
from agentfleet.realtime import RealtimeClient

API = "/api/v1"


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

    # -- agents ---------------------------------------------------------------------------

    async def list_agents(self) -> list[Agent]:
        items = (await self._request("GET", "/agents")).json()["items"]
        return [Agent.model_validate(i) for i in items]

    async def get_agent(self, name: str) -> Agent:
        return Agent.model_validate((await self._request("GET", f"/agents/{name}")).json())

    async def create_agent(self, name: str, spec: dict[str, Any]) -> Agent:
        response = await self._request("POST", "/agents", json={"name": name, "spec": spec})
        return Agent.model_validate(response.json())

    async def delete_agent(self, name: str) -> None:
        await self._request("DELETE", f"/agents/{name}")

    # -- sessions -------------------------------------------------------------------------

    async def create_session(
        self, agent: str, *, title: str | None = None, metadata: dict[str, str] | None = None
    ) -> Session:
        body = {"agent": agent, "title": title, "metadata": metadata or {}}
        return Session.model_validate((await self._request("POST", "/sessions", json=body)).json())

    async def get_session(self, session_id: str) -> Session:
        return Session.model_validate(
            (await self._request("GET", f"/sessions/{session_id}")).json()
        )

    async def list_sessions(self, *, agent: str | None = None) -> list[Session]:
        params = {"agent": agent} if agent else {}
        items = (await self._request("GET", "/sessions", params=params)).json()["items"]
        return [Session.model_validate(i) for i in items]

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
