"""Picking the model provider for an Agent's ``ModelSpec``, and sharing providers.

* ``fake`` → the OpenAI adapter pointed at the fake provider (``<fake_base_url>/v1``, or
  ``<spec.base_url>/v1``): the offline model of ``agentfleet dev`` and the tests.
* ``anthropic`` / ``openai`` → their adapter, with ``spec.base_url`` (OpenAI-compatible
  servers such as vLLM or Ollama go through ``openai``). The API key comes from the
  mounted Secret ``<secrets_dir>/<secretRef.name>/<secretRef.key>`` when the spec has an
  ``apiKeySecretRef``, else from the settings, else from ``ANTHROPIC_API_KEY`` /
  ``OPENAI_API_KEY``. A missing key is an :class:`InvalidRequestError` naming what is
  missing (never the key). When ``ProviderSettings.api_key_lookup`` is set (the secret
  manager's, see ``agentfleet_runtime.secrets.wiring``), it is asked first.

:class:`ProviderPool` keeps one provider per (provider, base URL, key), so all agents that
call the same upstream share its HTTP connection pool.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agentfleet_crds.contract import SECRETS_MOUNT_DIR
from agentfleet_crds.v1alpha1.agent import ModelProviderName, ModelSpec
from agentfleet_runtime.errors import InvalidRequestError
from agentfleet_runtime.outbound_http import HttpPool
from agentfleet_runtime.providers.anthropic import AnthropicProvider
from agentfleet_runtime.providers.base import ModelProvider
from agentfleet_runtime.providers.openai import OpenAIProvider

#: The key sent to the fake provider (which accepts any).
FAKE_API_KEY = "agentfleet-fake"

_ENV_VARS = {
    ModelProviderName.ANTHROPIC: "ANTHROPIC_API_KEY",
    ModelProviderName.OPENAI: "OPENAI_API_KEY",
}


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """What providers need beyond the ``ModelSpec``: where the fake provider is, default
    API keys (used when a spec has no ``apiKeySecretRef``), and where Secrets are mounted.
    ``environ`` is read for ``ANTHROPIC_API_KEY`` / ``OPENAI_API_KEY`` when a key is not
    set here (``None``: the process environment)."""

    fake_base_url: str | None = None
    anthropic_api_key: str | None = field(default=None, repr=False)
    openai_api_key: str | None = field(default=None, repr=False)
    secrets_dir: Path = Path(SECRETS_MOUNT_DIR)
    environ: Mapping[str, str] | None = field(default=None, repr=False, compare=False)
    #: Asked first for a spec's API key (``None``: not known there, use the rules above).
    api_key_lookup: Callable[[ModelSpec], str | None] | None = field(
        default=None, repr=False, compare=False
    )


@dataclass(frozen=True, slots=True)
class ResolvedProvider:
    """A spec resolved against the settings: everything that identifies a provider."""

    provider: ModelProviderName
    base_url: str | None
    api_key: str = field(repr=False)


def resolve(spec: ModelSpec, settings: ProviderSettings) -> ResolvedProvider:
    """Which upstream, at which URL, with which key (errors name what is missing)."""
    if spec.provider is ModelProviderName.FAKE:
        base = spec.base_url or settings.fake_base_url
        if not base:
            raise InvalidRequestError(
                "model provider 'fake' needs the fake provider's URL: set "
                "AGENTFLEET_FAKE_PROVIDER_URL (agentfleet dev sets it) or the model's baseUrl"
            )
        return ResolvedProvider(spec.provider, base.rstrip("/") + "/v1", FAKE_API_KEY)
    return ResolvedProvider(spec.provider, spec.base_url, _api_key(spec, settings))


def _api_key(spec: ModelSpec, settings: ProviderSettings) -> str:
    if settings.api_key_lookup is not None:
        looked_up = settings.api_key_lookup(spec)
        if looked_up:
            return looked_up
    ref = spec.api_key_secret_ref
    if ref is not None:
        root = settings.secrets_dir.resolve()
        path = (root / ref.name / ref.key).resolve()
        if not path.is_relative_to(root):
            raise InvalidRequestError(
                f"apiKeySecretRef {ref.name}/{ref.key} points outside the secrets directory"
            )
        try:
            key = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise InvalidRequestError(
                f"the API key for model provider '{spec.provider.value}' is missing: key "
                f"'{ref.key}' of Secret '{ref.name}' is not mounted at {path}"
            ) from None
        except OSError as exc:
            raise InvalidRequestError(
                f"cannot read the API key of Secret '{ref.name}' key '{ref.key}' "
                f"at {path}: {exc.strerror}"
            ) from None
        if not key:
            raise InvalidRequestError(
                f"the API key in Secret '{ref.name}' key '{ref.key}' ({path}) is empty"
            )
        return key
    env_var = _ENV_VARS[spec.provider]
    configured = (
        settings.anthropic_api_key
        if spec.provider is ModelProviderName.ANTHROPIC
        else settings.openai_api_key
    )
    environ = settings.environ if settings.environ is not None else os.environ
    key = (configured or environ.get(env_var) or "").strip()
    if not key:
        raise InvalidRequestError(
            f"the API key for model provider '{spec.provider.value}' is missing: set "
            f"{env_var}, or give the model an apiKeySecretRef"
        )
    return key


def _build(resolved: ResolvedProvider, http_pool: HttpPool | None) -> ModelProvider:
    if resolved.provider is ModelProviderName.ANTHROPIC:
        return AnthropicProvider(
            api_key=resolved.api_key, base_url=resolved.base_url, http_pool=http_pool
        )
    return OpenAIProvider(
        api_key=resolved.api_key,
        base_url=resolved.base_url,
        name=resolved.provider.value,
        http_pool=http_pool,
    )


def create_provider(
    spec: ModelSpec, settings: ProviderSettings, *, http_pool: HttpPool | None = None
) -> ModelProvider:
    """A new provider for ``spec`` (the caller closes it). Raises
    :class:`InvalidRequestError` when it cannot be configured (no fake URL, no key)."""
    return _build(resolve(spec, settings), http_pool)


class ProviderPool:
    """One provider per (provider, base URL, API key), shared by every agent that uses it;
    :meth:`aclose` closes them all. After an API key rotates, :meth:`invalidate` retires
    the providers built with the old key (the next :meth:`get` builds one with the new
    key; calls in flight finish on the old one, which :meth:`aclose` closes)."""

    def __init__(self, settings: ProviderSettings, *, http_pool: HttpPool | None = None) -> None:
        self.settings = settings
        self._http_pool = http_pool
        self._providers: dict[ResolvedProvider, ModelProvider] = {}
        self._retired: list[ModelProvider] = []

    def get(self, spec: ModelSpec) -> ModelProvider:
        """The shared provider for ``spec`` (created on first use)."""
        resolved = resolve(spec, self.settings)
        provider = self._providers.get(resolved)
        if provider is None:
            provider = self._providers[resolved] = _build(resolved, self._http_pool)
        return provider

    def invalidate(self, predicate: Callable[[ResolvedProvider], bool] | None = None) -> int:
        """Stop handing out the providers ``predicate`` matches (all when ``None``), e.g.
        ``lambda r: r.api_key == old_key``; answers how many were retired."""
        stale = [r for r in self._providers if predicate is None or predicate(r)]
        for resolved in stale:
            self._retired.append(self._providers.pop(resolved))
        return len(stale)

    def __len__(self) -> int:
        return len(self._providers)

    async def aclose(self) -> None:
        providers, self._providers = list(self._providers.values()), {}
        providers += self._retired
        self._retired = []
        await asyncio.gather(*(p.aclose() for p in providers), return_exceptions=True)
