"""Secrets from environment variables and a ``.env`` file (development overrides).

``ref.key`` is the variable's name. The process environment wins over the file; the file is
re-read on every call, so editing ``.env`` takes effect at the next refresh."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values
from pydantic import SecretStr

from agentfleet_runtime.secrets.base import SecretProvider, SecretRef, SecretValue, select_property
from agentfleet_runtime.secrets.errors import SecretNotFoundError


class EnvSecretProvider(SecretProvider):
    name = "env"

    def __init__(
        self, environ: Mapping[str, str] | None = None, env_file: Path | None = None
    ) -> None:
        self._environ = environ
        self.env_file = env_file

    def lookup(self, key: str) -> str | None:
        environ = self._environ if self._environ is not None else os.environ
        value = environ.get(key)
        if value is None and self.env_file is not None and self.env_file.is_file():
            value = dotenv_values(self.env_file).get(key)
        return value

    async def get(self, ref: SecretRef) -> SecretValue:
        value = self.lookup(ref.key)
        if value is None:
            raise SecretNotFoundError(
                f"environment variable {ref.key!r} is not set", dependency=self.dependency
            )
        return SecretValue(SecretStr(select_property(value, ref, provider=self.name)))
