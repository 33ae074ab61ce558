"""One contract, every SecretProvider: the same behaviour against in-memory, env, mounted
files, AWS (moto server + boto3), Azure (HTTPS fake + azure-keyvault-secrets), GCP (REST
fake + google-cloud-secret-manager), Vault (fake + hvac) and a real OpenBao (hvac)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentfleet_runtime.errors import DependencyError
from agentfleet_runtime.secrets.base import SecretProvider, SecretRef
from agentfleet_runtime.secrets.errors import SecretNotFoundError
from agentfleet_runtime.secrets.providers.env import EnvSecretProvider
from agentfleet_runtime.secrets.providers.files import FileSecretProvider, write_atomic
from agentfleet_runtime.secrets.providers.memory import MemorySecretProvider

from .conftest import Azure, Gcp, Moto, RealVault, Vault, unique


@dataclass
class Backend:
    provider: SecretProvider
    #: Store ``value`` as a new version of ``key``.
    put: Callable[[str, str], Awaitable[None]]
    #: A key the backend accepts for a new secret.
    new_key: Callable[[], str]
    #: Switch the backend off (``None``: it cannot be).
    outage: Callable[[bool], None] | None = None


BACKENDS = ["memory", "env", "files", "aws", "azure", "gcp", "vault-fake", "openbao"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    kind = request.param.replace("-", "_")
    result: Backend = request.getfixturevalue(f"backend_{kind}")
    return result


@pytest.fixture
def backend_memory() -> Backend:
    memory = MemorySecretProvider()

    async def put(key: str, value: str) -> None:
        memory.put(key, value)

    def outage(down: bool) -> None:
        memory.available = not down

    return Backend(memory, put, lambda: unique(), outage)


@pytest.fixture
def backend_env() -> Backend:
    environ: dict[str, str] = {}

    async def put(key: str, value: str) -> None:
        environ[key] = value

    return Backend(EnvSecretProvider(environ), put, lambda: unique("VAR").replace("-", "_"))


@pytest.fixture
def backend_files(tmp_path: Path) -> Backend:
    async def put(key: str, value: str) -> None:
        secret, item = key.split("/")
        write_atomic(tmp_path / secret, {item: value})

    return Backend(FileSecretProvider(tmp_path, watch=False), put, lambda: f"{unique()}/k")


@pytest.fixture
def backend_aws(moto: Moto, aws_env: None) -> Backend:
    from agentfleet_runtime.secrets.providers.aws import AwsSecretsManagerProvider

    client = moto.client()

    async def put(key: str, value: str) -> None:
        try:
            client.put_secret_value(SecretId=key, SecretString=value)
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(Name=key, SecretString=value)

    provider = AwsSecretsManagerProvider(region="us-east-1", endpoint_url=moto.url, max_attempts=1)
    return Backend(provider, put, lambda: unique())


@pytest.fixture
async def backend_azure(azure: Azure) -> AsyncIterator[Backend]:
    async def put(key: str, value: str) -> None:
        azure.vault.set(key, value)

    def outage(down: bool) -> None:
        azure.vault.available = not down

    provider = azure.provider()
    yield Backend(provider, put, lambda: unique(), outage)
    await provider.aclose()


@pytest.fixture
async def backend_gcp(gcp: Gcp) -> AsyncIterator[Backend]:
    async def put(key: str, value: str) -> None:
        gcp.fake.add(gcp.project, key, value)

    def outage(down: bool) -> None:
        gcp.fake.available = not down

    provider = gcp.provider()
    yield Backend(provider, put, lambda: unique(), outage)
    await provider.aclose()


@pytest.fixture
async def backend_vault_fake(vault: Vault) -> AsyncIterator[Backend]:
    async def put(key: str, value: str) -> None:
        vault.fake.put(key, _vault_data(value))

    def outage(down: bool) -> None:
        vault.fake.available = not down

    provider = vault.provider()
    yield Backend(provider, put, lambda: f"agentfleet/{unique()}", outage)
    await provider.aclose()


@pytest.fixture
async def backend_openbao(real_vault: RealVault) -> AsyncIterator[Backend]:
    import hvac
    from pydantic import SecretStr

    from agentfleet_runtime.secrets.providers.vault import VaultSecretProvider

    client = hvac.Client(url=real_vault.url, token=real_vault.token)

    async def put(key: str, value: str) -> None:
        client.secrets.kv.v2.create_or_update_secret(
            path=key, secret=_vault_data(value), mount_point="secret"
        )

    provider = VaultSecretProvider(real_vault.url, token=SecretStr(real_vault.token))
    yield Backend(provider, put, lambda: f"agentfleet/{unique()}")
    await provider.aclose()


def _vault_data(value: str) -> dict[str, Any]:
    """Vault KV secrets are maps: a JSON object is stored as its fields."""
    try:
        data = json.loads(value)
    except ValueError:
        return {"value": value}
    return data if isinstance(data, dict) else {"value": value}


async def test_reads_the_latest_value(backend: Backend) -> None:
    key = backend.new_key()
    await backend.put(key, "first-value-0001")
    first = await backend.provider.get(SecretRef(key))
    assert first.reveal() == "first-value-0001"
    await backend.put(key, "second-value-0002")
    second = await backend.provider.get(SecretRef(key))
    assert second.reveal() == "second-value-0002"
    if backend.provider.supports_versions or isinstance(backend.provider, FileSecretProvider):
        assert first.version
        assert second.version
        assert first.version != second.version


async def test_versions_and_pinned_reads(backend: Backend) -> None:
    if not backend.provider.supports_versions:
        pytest.skip(f"{backend.provider.name} keeps no versions")
    key = backend.new_key()
    await backend.put(key, "version-one-0001")
    one = await backend.provider.get(SecretRef(key))
    await backend.put(key, "version-two-0002")
    versions = await backend.provider.versions(SecretRef(key))
    assert len(versions) >= 2
    assert versions[0].current
    assert not versions[1].current
    assert one.version in [v.version for v in versions]
    pinned = await backend.provider.get(SecretRef(key, version=one.version))
    assert pinned.reveal() == "version-one-0001"


async def test_json_property(backend: Backend) -> None:
    key = backend.new_key()
    await backend.put(key, json.dumps({"username": "svc-agent", "password": "pa55-w0rd-xyz"}))
    value = await backend.provider.get(SecretRef(key, property="password"))
    assert value.reveal() == "pa55-w0rd-xyz"
    with pytest.raises(SecretNotFoundError, match="no property 'nope'"):
        await backend.provider.get(SecretRef(key, property="nope"))


async def test_missing_secret_is_not_found(backend: Backend) -> None:
    with pytest.raises(SecretNotFoundError) as info:
        await backend.provider.get(SecretRef(backend.new_key()))
    assert info.value.dependency == f"secrets:{backend.provider.name}"


async def test_outage_is_a_retryable_dependency_error(backend: Backend) -> None:
    if backend.outage is None:
        pytest.skip(f"{backend.provider.name}: no outage switch (see the scenario tests)")
    key = backend.new_key()
    await backend.put(key, "value-before-outage")
    backend.outage(True)
    try:
        with pytest.raises(DependencyError) as info:
            await backend.provider.get(SecretRef(key))
        assert info.value.retryable
        assert "value-before-outage" not in str(info.value)
    finally:
        backend.outage(False)
    assert (await backend.provider.get(SecretRef(key))).reveal() == "value-before-outage"
