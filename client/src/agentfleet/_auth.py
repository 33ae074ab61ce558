"""Tokens: a fixed one, or a provider the SDK asks again when the server says the token
expired (re-authentication)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

TokenProvider = Callable[[], Awaitable[str] | str]


class Credentials:
    def __init__(self, token: str | None = None, token_provider: TokenProvider | None = None):
        self._token = token
        self._provider = token_provider

    @property
    def can_refresh(self) -> bool:
        return self._provider is not None

    async def token(self, *, refresh: bool = False) -> str | None:
        if self._provider is not None and (refresh or self._token is None):
            value = self._provider()
            self._token = await value if inspect.isawaitable(value) else value
        return self._token

    async def headers(self, *, refresh: bool = False) -> dict[str, str]:
        token = await self.token(refresh=refresh)
        return {"Authorization": f"Bearer {token}"} if token else {}
