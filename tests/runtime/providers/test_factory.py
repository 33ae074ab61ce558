"""The provider factory and pool: which adapter, which key, and sharing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet_crds.v1alpha1.agent import ModelSpec
from agentfleet_crds.v1alpha1.common import SecretKeyRef
from agentfleet_runtime.errors import InvalidRequestError
from agentfleet_runtime.messages import user_message
from agentfleet_runtime.providers.anthropic import AnthropicProvider
from agentfleet_runtime.providers.base import ModelRequest
from agentfleet_runtime.providers.factory import ProviderPool, ProviderSettings, create_provider
from agentfleet_runtime.providers.openai import OpenAIProvider
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider

REQUEST = ModelRequest(model="fake-model", system="", messages=[user_message("hello")])
NO_ENV: dict[str, str] = {}


def write_secret(root: Path, name: str, key: str, value: str) -> None:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / key).write_text(value)


@pytest.mark.parametrize("provider_name", ["openai", "anthropic"])
async def test_the_key_comes_from_the_mounted_secret(
    fake: RunningFakeProvider, tmp_path: Path, provider_name: str
) -> None:
    write_secret(tmp_path, "llm-keys", "api-key", "sk-from-secret\n")
    spec = ModelSpec(
        provider=provider_name,
        name="fake-model",
        base_url=fake.openai_base_url if provider_name == "openai" else fake.anthropic_base_url,
        api_key_secret_ref=SecretKeyRef(name="llm-keys", key="api-key"),
    )
    settings = ProviderSettings(
        secrets_dir=tmp_path, openai_api_key="ignored", anthropic_api_key="ignored"
    )
    provider = create_provider(spec, settings)
    try:
        assert provider.name == provider_name
        assert isinstance(
            provider, OpenAIProvider if provider_name == "openai" else AnthropicProvider
        )
        response = await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert "offline model" in response.message["content"]
    assert fake.script.requests[0].api_key == "sk-from-secret"
    assert fake.script.requests[0].wire == provider_name


def test_a_missing_secret_file_names_the_secret(tmp_path: Path) -> None:
    spec = ModelSpec(
        provider="anthropic",
        name="claude",
        api_key_secret_ref=SecretKeyRef(name="llm-keys", key="anthropic"),
    )
    with pytest.raises(InvalidRequestError) as caught:
        create_provider(spec, ProviderSettings(secrets_dir=tmp_path, anthropic_api_key="unused"))
    assert "'llm-keys'" in caught.value.detail
    assert "'anthropic'" in caught.value.detail
    assert str(tmp_path) in caught.value.detail


def test_an_empty_secret_is_an_error(tmp_path: Path) -> None:
    write_secret(tmp_path, "llm-keys", "openai", "\n")
    spec = ModelSpec(
        provider="openai",
        name="gpt",
        api_key_secret_ref=SecretKeyRef(name="llm-keys", key="openai"),
    )
    with pytest.raises(InvalidRequestError, match="empty"):
        create_provider(spec, ProviderSettings(secrets_dir=tmp_path))


def test_a_secret_ref_cannot_leave_the_secrets_dir(tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("sk-stolen")
    secrets = tmp_path / "secrets"
    (secrets / "x").mkdir(parents=True)
    # The CRD's patterns already refuse such a name; the factory does not rely on them.
    escaping = SecretKeyRef.model_construct(name="..", key="outside")
    spec = ModelSpec(provider="openai", name="gpt").model_copy(
        update={"api_key_secret_ref": escaping}
    )
    with pytest.raises(InvalidRequestError, match="outside the secrets directory"):
        create_provider(spec, ProviderSettings(secrets_dir=secrets))


@pytest.mark.parametrize(
    ("provider_name", "env_var"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
def test_a_missing_key_names_the_environment_variable(provider_name: str, env_var: str) -> None:
    spec = ModelSpec(provider=provider_name, name="m")
    with pytest.raises(InvalidRequestError) as caught:
        create_provider(spec, ProviderSettings(environ=NO_ENV))
    assert env_var in caught.value.detail
    assert "apiKeySecretRef" in caught.value.detail


async def test_keys_from_settings_then_environment(fake: RunningFakeProvider) -> None:
    spec = ModelSpec(provider="openai", name="fake-model", base_url=fake.openai_base_url)
    from_settings = create_provider(
        spec, ProviderSettings(openai_api_key="sk-settings", environ={"OPENAI_API_KEY": "sk-env"})
    )
    from_env = create_provider(spec, ProviderSettings(environ={"OPENAI_API_KEY": "sk-env"}))
    try:
        await from_settings.complete(REQUEST)
        await from_env.complete(REQUEST)
    finally:
        await from_settings.aclose()
        await from_env.aclose()
    assert [r.api_key for r in fake.script.requests] == ["sk-settings", "sk-env"]


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    provider = create_provider(ModelSpec(provider="anthropic", name="m"), ProviderSettings())
    assert isinstance(provider, AnthropicProvider)
    assert provider._client.api_key == "sk-ant-env"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(InvalidRequestError, match="ANTHROPIC_API_KEY"):
        create_provider(ModelSpec(provider="anthropic", name="m"), ProviderSettings())


async def test_fake_goes_to_the_fake_provider_with_the_openai_wire(
    fake: RunningFakeProvider,
) -> None:
    spec = ModelSpec(provider="fake", name="offline")
    provider = create_provider(spec, ProviderSettings(fake_base_url=fake.url, environ=NO_ENV))
    try:
        assert isinstance(provider, OpenAIProvider)
        assert provider.name == "fake"
        response = await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert response.message["content"].startswith("I am agentfleet's offline model")
    assert fake.script.requests[0].wire == "openai"


def test_fake_without_its_url_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="AGENTFLEET_FAKE_PROVIDER_URL"):
        create_provider(ModelSpec(provider="fake", name="offline"), ProviderSettings())


async def test_the_pool_shares_one_provider_per_upstream_and_key(
    fake: RunningFakeProvider, tmp_path: Path
) -> None:
    write_secret(tmp_path, "team-a", "key", "sk-a")
    pool = ProviderPool(
        ProviderSettings(fake_base_url=fake.url, openai_api_key="sk-default", secrets_dir=tmp_path)
    )
    base = fake.openai_base_url
    first = pool.get(ModelSpec(provider="openai", name="gpt-a", base_url=base))
    same = pool.get(ModelSpec(provider="openai", name="gpt-b", base_url=base, max_tokens=10))
    other_key = pool.get(
        ModelSpec(
            provider="openai",
            name="gpt-a",
            base_url=base,
            api_key_secret_ref=SecretKeyRef(name="team-a", key="key"),
        )
    )
    other_url = pool.get(ModelSpec(provider="openai", name="gpt-a", base_url=fake.url + "/v1/"))
    offline = pool.get(ModelSpec(provider="fake", name="offline"))
    assert first is same
    assert len({id(p) for p in (first, other_key, other_url, offline)}) == 4
    assert len(pool) == 4
    await first.complete(REQUEST)
    await pool.aclose()
    assert len(pool) == 0
    assert isinstance(first, OpenAIProvider)
    assert first._client._client.is_closed
