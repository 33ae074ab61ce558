"""The five scenarios of issue #6, against real backends:

* rotation → zero-downtime update (mounted Secret rotated by a kubelet-style symlink swap,
  picked up by the file watch; AWS Secrets Manager version rotation),
* provider unavailable → cached value within max-stale (moto server stopped; Azure fake
  switched off),
* validation failure → alert and keep the old value (Vault via hvac),
* unauthorized access → denied and audited (bindings from SecretBinding resources),
* expiry → renewal (Vault lease) or alert (Azure Key Vault ``exp``, GCP ``expire_time``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentfleet_runtime.secrets import (
    AuditEvent,
    Redactor,
    SecretAccessDeniedError,
    SecretCatalog,
    SecretManager,
    SecretManagerOptions,
    SecretProvider,
    SecretRef,
    SecretSpec,
    SecretUnavailableError,
    SecretUpdate,
)
from agentfleet_runtime.secrets.providers.files import FileSecretProvider, write_atomic
from agentfleet_runtime.secrets.validation import api_key

from .conftest import Azure, Clock, Gcp, Moto, Vault, sample, unique
from .test_manager import binding

AGENT = "agent:writer"


def manager_for(
    provider: SecretProvider, *specs: SecretSpec, clock: Clock | None = None, **options: float
) -> SecretManager:
    catalog = SecretCatalog()
    for s in specs:
        catalog.add(s)
    kwargs = {"clock": clock, "now": clock.now} if clock else {}
    return SecretManager(
        catalog,
        {provider.name: provider},
        options=SecretManagerOptions(**options),  # type: ignore[arg-type]
        redactor=Redactor(),
        **kwargs,  # type: ignore[arg-type]
    )


def secret(name: str, provider: str, key: str, prop: str | None = None, **kw: object) -> SecretSpec:
    ref = SecretRef(key, prop)
    return SecretSpec(name, provider, ref, frozenset({AGENT}), **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ rotation


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
async def test_rotation_of_a_mounted_secret_is_zero_downtime(tmp_path: Path, polling: bool) -> None:
    """kubelet swaps ``..data``; the watch re-reads at once; readers never see an error,
    an empty value or a mix; subscribers see each new value in order."""
    write_atomic(tmp_path / "llm", {"openai": "sk-rotation-value-0", "other": "x"})
    files = FileSecretProvider(tmp_path, force_polling=polling)
    # A TTL far longer than the test: only the watch can deliver the rotations.
    manager = manager_for(files, secret("openai", "files", "llm/openai", refresh_seconds=3600))
    updates: list[SecretUpdate] = []
    arrived = asyncio.Event()

    def on_update(update: SecretUpdate) -> None:
        updates.append(update)
        arrived.set()

    manager.subscribe("openai", on_update, consumer=AGENT)
    assert (await manager.start()).ready
    seen: list[str] = []
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            seen.append((await manager.get("openai", consumer=AGENT)).get_secret_value())
            await asyncio.sleep(0.001)

    task = asyncio.create_task(reader())
    try:
        await asyncio.sleep(0.2)  # let the watch start
        for i in range(1, 4):
            arrived.clear()
            write_atomic(tmp_path / "llm", {"openai": f"sk-rotation-value-{i}", "other": "x"})
            await asyncio.wait_for(arrived.wait(), timeout=5)
            assert len(updates) == i, f"rotation {i} not picked up"
            await asyncio.sleep(0.05)  # readers run on the new value
    finally:
        stop.set()
        await task
        await manager.aclose()
    assert [u.value.get_secret_value() for u in updates] == [
        f"sk-rotation-value-{i}" for i in range(1, 4)
    ]
    assert all(u.version and u.version.startswith("..") for u in updates)
    assert set(seen) <= {f"sk-rotation-value-{i}" for i in range(4)}
    assert seen[-1] == "sk-rotation-value-3"
    # never older after newer: each reader saw the values in order
    order = [int(v[-1]) for v in seen]
    assert order == sorted(order)


async def test_rotation_in_aws_secrets_manager_reaches_subscribers(
    moto: Moto, aws_env: None
) -> None:
    from agentfleet_runtime.secrets.providers.aws import AwsSecretsManagerProvider

    name = unique("prod/openai")
    client = moto.client()
    client.create_secret(Name=name, SecretString="sk-aws-value-number-1")
    aws = AwsSecretsManagerProvider(region="us-east-1", endpoint_url=moto.url, max_attempts=1)
    manager = manager_for(aws, secret("openai", "aws", name))
    updates: list[SecretUpdate] = []
    manager.subscribe("openai", updates.append, consumer=AGENT)
    await manager.load_all()
    client.put_secret_value(SecretId=name, SecretString="sk-aws-value-number-2")
    await manager.tick()  # not due yet
    assert updates == []
    await manager.refresh("openai")
    assert [u.value.get_secret_value() for u in updates] == ["sk-aws-value-number-2"]
    assert updates[0].previous_version
    assert updates[0].version != updates[0].previous_version


# ------------------------------------------------------------------ provider unavailable


async def test_aws_outage_serves_the_cached_value_within_max_stale(
    aws_env: None, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    from moto.server import ThreadedMotoServer

    from agentfleet_runtime.secrets.providers.aws import AwsSecretsManagerProvider
    from agentfleet_runtime.testing.servers import free_port

    from .conftest import Moto as MotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto = MotoServer(f"http://{host}:{port}", server)
    moto.client().create_secret(Name="prod/openai", SecretString="sk-cached-before-outage")
    aws = AwsSecretsManagerProvider(
        region="us-east-1", endpoint_url=moto.url, max_attempts=1, connect_timeout=0.5
    )
    manager = manager_for(
        aws,
        secret("openai", "aws", "prod/openai", refresh_seconds=60),
        clock=clock,
        max_stale_seconds=600,
    )
    await manager.load_all()
    server.stop()
    stale_before = sample("agentfleet_secret_stale_served_total", secret="openai")
    clock.advance(120)  # past the TTL: the manager must ask AWS, which is down
    with caplog.at_level(logging.WARNING):
        value = await manager.get("openai", consumer=AGENT)
    assert value.get_secret_value() == "sk-cached-before-outage"
    assert manager.status("openai").stale
    assert sample("agentfleet_secret_stale_served_total", secret="openai") == stale_before + 1
    assert (
        sample(
            "agentfleet_secret_provider_errors_total",
            provider="aws",
            secret="openai",
            error="DependencyConnectionError",
        )
        >= 1
    )
    warnings = [r for r in caplog.records if getattr(r, "event_type", "") == "secret.serving_stale"]
    assert len(warnings) == 1
    assert warnings[0].provider == "aws"
    assert manager.ready  # still within max-stale
    clock.advance(600)  # past max-stale
    with pytest.raises(SecretUnavailableError, match="max-stale"):
        await manager.get("openai", consumer=AGENT)
    assert not manager.ready
    await manager.aclose()


async def test_azure_outage_serves_stale_then_recovers(azure: Azure, clock: Clock) -> None:
    azure.vault.set("openai", "sk-azure-value-number-1")
    manager = manager_for(
        azure.provider(), secret("openai", "azure", "openai", refresh_seconds=30), clock=clock
    )
    await manager.load_all()
    azure.vault.available = False
    clock.advance(60)
    await manager.tick()
    assert manager.status("openai").last_error == "OverloadedError"
    assert (await manager.get("openai", consumer=AGENT)).get_secret_value() == (
        "sk-azure-value-number-1"
    )
    azure.vault.available = True
    azure.vault.set("openai", "sk-azure-value-number-2")
    clock.advance(60)
    await manager.tick()
    status = manager.status("openai")
    assert not status.stale
    assert status.last_error is None
    assert (await manager.get("openai", consumer=AGENT)).get_secret_value() == (
        "sk-azure-value-number-2"
    )
    await manager.aclose()


# ------------------------------------------------------------------ validation failure


async def test_invalid_new_value_alerts_and_keeps_the_old_one(
    vault: Vault, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"agentfleet/{unique()}"
    vault.fake.put(path, {"api_key": "sk-valid-key-number-1-abcdef"})
    provider = vault.provider()
    manager = SecretManager(
        SecretCatalog(
            {
                "openai": SecretSpec(
                    "openai", "vault", SecretRef(path, "api_key"), frozenset({AGENT})
                )
            }
        ),
        {"vault": provider},
        validators={"openai": [api_key]},
        redactor=Redactor(),
    )
    updates: list[SecretUpdate] = []
    manager.subscribe("openai", updates.append, consumer=AGENT)
    await manager.load_all()
    failures = sample("agentfleet_secret_validation_failures_total", secret="openai")
    vault.fake.put(path, {"api_key": "oops not a key"})
    with caplog.at_level(logging.WARNING):
        await manager.refresh("openai")
    alert = [
        r for r in caplog.records if getattr(r, "event_type", "") == "secret.validation_failed"
    ]
    assert len(alert) == 1
    assert alert[0].levelno == logging.ERROR
    assert alert[0].alert is True
    assert alert[0].version == "2"
    assert alert[0].kept_version == "1"
    assert "oops not a key" not in caplog.text
    assert sample("agentfleet_secret_validation_failures_total", secret="openai") == failures + 1
    assert (await manager.get("openai", consumer=AGENT)).get_secret_value() == (
        "sk-valid-key-number-1-abcdef"
    )
    assert updates == []
    vault.fake.put(path, {"api_key": "sk-valid-key-number-3-abcdef"})
    await manager.refresh("openai")
    assert [u.value.get_secret_value() for u in updates] == ["sk-valid-key-number-3-abcdef"]
    await manager.aclose()


# ------------------------------------------------------------------ unauthorized access


async def test_unauthorized_access_is_denied_audited_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_atomic(tmp_path / "llm", {"openai": "sk-only-for-the-writer"})
    catalog = SecretCatalog.from_bindings(
        [
            binding(
                "llm-keys",
                ["writer"],
                [{"name": "openai", "kubernetes": {"secretName": "llm", "key": "openai"}}],
                "kubernetes",
            )
        ]
    )
    manager = SecretManager(
        catalog, {"kubernetes": FileSecretProvider(tmp_path, watch=False)}, redactor=Redactor()
    )
    events: list[AuditEvent] = []
    manager.audit.add_sink(events.append)
    await manager.load_all()
    before = sample(
        "agentfleet_secret_access_denied_total", secret="openai", consumer="agent:intruder"
    )
    with caplog.at_level(logging.INFO, logger="agentfleet.audit"):
        with pytest.raises(SecretAccessDeniedError) as info:
            await manager.get("openai", consumer="agent:intruder")
        with pytest.raises(SecretAccessDeniedError):
            manager.get_cached("no-such-secret", consumer="agent:intruder")
        assert (await manager.get("openai", consumer="agent:writer")).get_secret_value() == (
            "sk-only-for-the-writer"
        )
    assert info.value.status == 403
    assert "sk-only" not in str(info.value)
    assert (
        sample("agentfleet_secret_access_denied_total", secret="openai", consumer="agent:intruder")
        == before + 1
    )
    denied = [e for e in events if e.action == "secret.access_denied"]
    assert [(e.fields["secret"], e.fields["reason"]) for e in denied] == [
        ("openai", "consumer not bound"),
        ("no-such-secret", "unknown secret"),
    ]
    assert denied[0].fields["binding"] == "llm-keys"
    assert denied[0].outcome == "denied"
    audit_records = [r for r in caplog.records if r.name == "agentfleet.audit"]
    assert [r.action for r in audit_records] == [  # type: ignore[attr-defined]
        "secret.access_denied",
        "secret.access_denied",
        "secret.read",
    ]
    assert audit_records[0].levelno == logging.WARNING
    assert audit_records[0].audit is True  # type: ignore[attr-defined]
    assert "sk-only-for-the-writer" not in caplog.text


# ------------------------------------------------------------------ expiry


async def test_expiring_vault_lease_is_renewed(vault: Vault, clock: Clock) -> None:
    vault.fake.lease_seconds = 3600
    provider = vault.provider()
    manager = manager_for(
        provider,
        secret("db", "vault", "/database/creds/readonly", "password", refresh_seconds=86400),
        clock=clock,
        renew_before_seconds=7200,
    )
    events: list[AuditEvent] = []
    manager.audit.add_sink(events.append)
    await manager.load_all()
    first = manager.status("db")
    assert first.expires_at is not None
    password = (await manager.get("db", consumer=AGENT)).get_secret_value()
    await manager.tick()  # lease (1 h) is within renew_before (2 h): renew
    assert vault.fake.renewals == 1
    assert [e.outcome for e in events if e.action == "secret.renewed"] == ["ok"]
    assert sample("agentfleet_secret_renewals_total", secret="db", outcome="ok") >= 1
    # the renewed lease keeps the same credentials
    assert (await manager.get("db", consumer=AGENT)).get_secret_value() == password
    await manager.aclose()


async def test_expiring_azure_secret_raises_an_alert_once(
    azure: Azure, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    expires = int((clock.now() + timedelta(days=1)).timestamp())
    azure.vault.set("openai", "sk-expiring-azure-value", expires=expires)
    manager = manager_for(
        azure.provider(),
        secret("openai", "azure", "openai", refresh_seconds=3600),
        clock=clock,
        expiry_warning_seconds=3 * 86400,
    )
    await manager.load_all()
    alerts_before = sample("agentfleet_secret_expiry_alerts_total", secret="openai")
    with caplog.at_level(logging.ERROR):
        await manager.tick()
        await manager.tick()
    alerts = [r for r in caplog.records if getattr(r, "event_type", "") == "secret.expiring"]
    assert len(alerts) == 1
    assert alerts[0].renewable is False
    assert sample("agentfleet_secret_expiry_alerts_total", secret="openai") == alerts_before + 1
    assert sample("agentfleet_secret_expiry_timestamp_seconds", secret="openai") == expires
    clock.advance(2 * 86400)  # now expired: a second, different alert
    with caplog.at_level(logging.ERROR):
        await manager.tick()
    assert any(getattr(r, "event_type", "") == "secret.expired" for r in caplog.records)
    await manager.aclose()


async def test_gcp_secret_expiry_is_reported(gcp: Gcp, clock: Clock) -> None:
    gcp.fake.add(gcp.project, "openai", "sk-gcp-value-number-1")
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=5)
    gcp.fake.set_expiry(gcp.project, "openai", when)
    manager = manager_for(gcp.provider(), secret("openai", "gcp", "openai"), clock=clock)
    await manager.load_all()
    status = manager.status("openai")
    assert status.version == "1"
    assert status.expires_at == when
    await manager.aclose()
