"""Optional SDK extras fail clearly when missing; the model provider pool takes API keys
from the secret manager (access-checked) and retires clients when a key rotates."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agentfleet_crds.v1alpha1.agent import ModelSpec
from agentfleet_runtime.providers.factory import ProviderPool, ProviderSettings
from agentfleet_runtime.secrets import (
    Redactor,
    SecretAccessDeniedError,
    SecretCatalog,
    SecretManager,
    SecretProviderNotInstalledError,
)
from agentfleet_runtime.secrets.providers.files import FileSecretProvider, write_atomic
from agentfleet_runtime.secrets.settings import SecretsSettings
from agentfleet_runtime.secrets.wiring import connect_provider_pool, model_api_key_lookup

from .test_manager import binding


@pytest.mark.parametrize(
    ("kind", "module", "extra"),
    [
        ("aws", "boto3", "aws"),
        ("azure", "azure.keyvault.secrets", "azure"),
        ("gcp", "google.cloud.secretmanager", "gcp"),
        ("vault", "hvac", "vault"),
    ],
)
def test_missing_sdk_names_the_extra(
    kind: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentfleet_runtime.secrets.factory import create_secret_provider

    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    settings = SecretsSettings.model_validate(
        {
            "azure": {"vault_url": "https://v.vault.azure.net"},
            "vault": {"url": "https://vault:8200"},
        }
    )
    with pytest.raises(SecretProviderNotInstalledError) as info:
        create_secret_provider(kind, settings, secrets_dir=Path("/nonexistent"))
    assert f"agentfleet-runtime[{extra}]" in str(info.value)
    assert info.value.extensions["extra"] == extra


def _openai(secret_ref: bool = True) -> ModelSpec:
    spec = {"provider": "openai", "name": "gpt-test"}
    if secret_ref:
        spec["apiKeySecretRef"] = {"name": "llm", "key": "openai"}  # type: ignore[assignment]
    return ModelSpec.model_validate(spec)


async def test_pool_picks_up_a_rotated_key_and_denies_unbound_agents(tmp_path: Path) -> None:
    write_atomic(tmp_path / "llm", {"openai": "sk-openai-key-number-1"})
    catalog = SecretCatalog.from_bindings(
        [
            binding(
                "llm",
                ["writer"],
                [{"name": "openai", "kubernetes": {"secretName": "llm", "key": "openai"}}],
                "kubernetes",
            )
        ]
    )
    manager = SecretManager(
        catalog, {"kubernetes": FileSecretProvider(tmp_path)}, redactor=Redactor()
    )
    await manager.start()
    # The mounted file is elsewhere than secrets_dir: the key can only come via the manager.
    settings = ProviderSettings(
        secrets_dir=tmp_path / "unused",
        environ={},
        api_key_lookup=model_api_key_lookup(manager, consumer="agent:writer"),
    )
    pool = ProviderPool(settings)
    connect_provider_pool(manager, pool, ["openai"], consumer="agent:writer")
    first = pool.get(_openai())
    assert pool.get(_openai()) is first
    assert [r.api_key for r in pool._providers] == ["sk-openai-key-number-1"]

    write_atomic(tmp_path / "llm", {"openai": "sk-openai-key-number-2"})
    await manager.refresh("openai")  # (the file watch does this by itself; see scenarios)
    second = pool.get(_openai())
    assert second is not first
    assert [r.api_key for r in pool._providers] == ["sk-openai-key-number-2"]
    assert pool._retired == [first]  # closed on aclose, after calls in flight finish

    intruder = ProviderPool(
        ProviderSettings(
            environ={}, api_key_lookup=model_api_key_lookup(manager, consumer="agent:intruder")
        )
    )
    with pytest.raises(SecretAccessDeniedError):
        intruder.get(_openai())
    await pool.aclose()
    await manager.aclose()
    assert pool._retired == []
    assert len(pool) == 0


async def test_lookup_by_provider_name_and_fallback() -> None:
    from agentfleet_runtime.secrets import SecretRef, SecretSpec
    from agentfleet_runtime.secrets.providers.memory import MemorySecretProvider

    memory = MemorySecretProvider()
    memory.put("anthropic", "sk-ant-from-the-vault-123")
    catalog = SecretCatalog()
    catalog.add(
        SecretSpec("anthropic-key", "memory", SecretRef("anthropic"), frozenset({"agent:a"}))
    )
    manager = SecretManager(catalog, {"memory": memory}, redactor=Redactor())
    await manager.load_all()
    lookup = model_api_key_lookup(
        manager, consumer="agent:a", model_api_keys={"anthropic": "anthropic-key"}
    )
    anthropic = ModelSpec.model_validate({"provider": "anthropic", "name": "claude-test"})
    assert lookup(anthropic) == "sk-ant-from-the-vault-123"
    assert lookup(_openai(secret_ref=False)) is None  # not held: the factory's own rules
