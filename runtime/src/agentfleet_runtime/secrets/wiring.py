"""Connecting the secret manager to the runtime's clients: model provider API keys (looked
up through the manager, with access control and audit) and the provider pool (retiring
clients built with a rotated key)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from agentfleet_crds.v1alpha1.agent import ModelSpec
from agentfleet_runtime.providers.factory import ProviderPool
from agentfleet_runtime.secrets.manager import SecretManager, SecretUpdate


def model_key_secret(
    manager: SecretManager, spec: ModelSpec, model_api_keys: Mapping[str, str]
) -> str | None:
    """The logical secret holding ``spec``'s API key: the bound secret of its
    ``apiKeySecretRef``, else the one configured for its provider, else ``None``."""
    ref = spec.api_key_secret_ref
    if ref is not None:
        bound = manager.catalog.find_kubernetes(ref.name, ref.key)
        if bound is not None:
            return bound.name
    return model_api_keys.get(spec.provider.value)


def model_api_key_lookup(
    manager: SecretManager, *, consumer: str, model_api_keys: Mapping[str, str] | None = None
) -> Callable[[ModelSpec], str | None]:
    """``ProviderSettings.api_key_lookup`` backed by the manager's cache: access-checked
    and audited for ``consumer``; ``None`` for keys the manager does not hold (the
    provider factory then reads the file or environment as before)."""
    names = dict(model_api_keys or {})

    def lookup(spec: ModelSpec) -> str | None:
        name = model_key_secret(manager, spec, names)
        if name is None or name not in manager.catalog:
            return None
        return manager.get_cached(name, consumer=consumer).get_secret_value()

    return lookup


def connect_provider_pool(
    manager: SecretManager, pool: ProviderPool, names: Iterable[str], *, consumer: str
) -> Callable[[], None]:
    """When one of ``names`` rotates, retire the pool's providers built with the old
    value. Returns a function that disconnects."""

    def retire(update: SecretUpdate) -> None:
        if update.previous is None:
            return
        old = update.previous.get_secret_value()
        pool.invalidate(lambda resolved: resolved.api_key == old)

    unsubscribes = [manager.subscribe(n, retire, consumer=consumer) for n in set(names)]

    def disconnect() -> None:
        for unsubscribe in unsubscribes:
            unsubscribe()

    return disconnect
