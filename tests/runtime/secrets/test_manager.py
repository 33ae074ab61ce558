"""The SecretManager's cache, readiness, validation, subscribers, versions/rollback and
catalog, with the in-memory provider and a hand-moved clock."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agentfleet_crds.v1alpha1.secretbinding import SecretBinding
from agentfleet_runtime.secrets import (
    AuditEvent,
    AuditLog,
    Redactor,
    SecretAccessDeniedError,
    SecretCatalog,
    SecretManager,
    SecretManagerOptions,
    SecretRef,
    SecretSpec,
    SecretUnavailableError,
    SecretUpdate,
    UnsupportedSecretOperationError,
)
from agentfleet_runtime.secrets.factory import build_secret_manager, override_variable
from agentfleet_runtime.secrets.providers.files import FileSecretProvider, write_atomic
from agentfleet_runtime.secrets.providers.memory import MemorySecretProvider
from agentfleet_runtime.secrets.settings import SecretsSettings
from agentfleet_runtime.secrets.validation import api_key

from .conftest import Clock, sample

READER = "agent:writer"


def make(
    clock: Clock,
    provider: MemorySecretProvider | FileSecretProvider,
    *specs: SecretSpec,
    **options: float,
) -> SecretManager:
    catalog = SecretCatalog()
    for spec in specs:
        catalog.add(spec)
    return SecretManager(
        catalog,
        {provider.name: provider},
        options=SecretManagerOptions(**options),  # type: ignore[arg-type]
        redactor=Redactor(),
        clock=clock,
        now=clock.now,
    )


def spec(
    name: str = "llm-key", key: str = "k", provider: str = "memory", **kw: object
) -> SecretSpec:
    return SecretSpec(name, provider, SecretRef(key), frozenset({READER}), **kw)  # type: ignore[arg-type]


async def test_cache_serves_within_ttl_and_rereads_after(clock: Clock) -> None:
    memory = MemorySecretProvider()
    memory.put("k", "value-number-one")
    manager = make(clock, memory, spec(refresh_seconds=60))
    assert (await manager.get("llm-key", consumer=READER)).get_secret_value() == "value-number-one"
    reads = memory.reads
    clock.advance(30)
    await manager.get("llm-key", consumer=READER)
    assert memory.reads == reads
    memory.put("k", "value-number-two")
    clock.advance(31)
    assert (await manager.get("llm-key", consumer=READER)).get_secret_value() == "value-number-two"
    assert memory.reads == reads + 1


async def test_concurrent_reads_share_one_provider_call(clock: Clock) -> None:
    class Slow(MemorySecretProvider):
        async def get(self, ref: SecretRef):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.05)
            return await super().get(ref)

    slow = Slow()
    slow.put("k", "value-number-one")
    manager = make(clock, slow, spec())
    values = await asyncio.gather(*(manager.get("llm-key", consumer=READER) for _ in range(20)))
    assert {v.get_secret_value() for v in values} == {"value-number-one"}
    assert slow.reads == 1


async def test_readiness_waits_for_required_secrets(clock: Clock) -> None:
    memory = MemorySecretProvider()
    optional = spec("optional", key="o", required=False)
    manager = make(clock, memory, spec(), optional, retry_seconds=1)
    readiness = await manager.load_all()
    assert not readiness.ready
    assert readiness.missing == {"llm-key": "SecretNotFoundError"}
    assert sample("agentfleet_secrets_ready") == 0
    with pytest.raises(SecretUnavailableError, match="not resolved yet"):
        manager.get_cached("llm-key", consumer=READER)
    memory.put("k", "value-number-one")
    clock.advance(2)
    await manager.tick()
    assert manager.ready
    assert manager.readiness().missing == {}
    assert sample("agentfleet_secrets_ready") == 1
    assert manager.get_cached("llm-key", consumer=READER).get_secret_value() == "value-number-one"


async def test_wait_ready_gives_up_after_its_deadline() -> None:
    manager = make(Clock(), MemorySecretProvider(), spec(), retry_seconds=0.01)
    manager._clock = __import__("time").monotonic  # real time for the deadline
    readiness = await manager.wait_ready(within_seconds=0.2)
    assert not readiness.ready


async def test_subscribers_get_rotations_and_a_failing_one_does_not_stop_others(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    memory = MemorySecretProvider()
    memory.put("k", "value-number-one")
    manager = make(clock, memory, spec())
    await manager.load_all()
    seen: list[SecretUpdate] = []

    def broken(update: SecretUpdate) -> None:
        raise RuntimeError("subscriber bug")

    async def good(update: SecretUpdate) -> None:
        seen.append(update)

    manager.subscribe("llm-key", broken, consumer=READER)
    unsubscribe = manager.subscribe("llm-key", good, consumer=READER)
    memory.put("k", "value-number-two")
    await manager.refresh("llm-key")
    assert [u.value.get_secret_value() for u in seen] == ["value-number-two"]
    assert seen[0].previous is not None
    assert seen[0].previous.get_secret_value() == "value-number-one"
    assert (seen[0].version, seen[0].previous_version, seen[0].reason) == ("2", "1", "rotated")
    assert any(getattr(r, "event_type", "") == "secret.subscriber_failed" for r in caplog.records)
    unsubscribe()
    memory.put("k", "value-number-three")
    await manager.refresh("llm-key")
    assert len(seen) == 1


async def test_subscribing_needs_read_access(clock: Clock) -> None:
    manager = make(clock, MemorySecretProvider(), spec())
    with pytest.raises(SecretAccessDeniedError):
        manager.subscribe("llm-key", lambda u: None, consumer="agent:other")


async def test_rollback_with_provider_versions_pins_until_unpinned(clock: Clock) -> None:
    memory = MemorySecretProvider()
    memory.put("k", "value-number-one")
    memory.put("k", "value-number-two")
    events: list[AuditEvent] = []
    manager = make(clock, memory, spec())
    manager.audit.add_sink(events.append)
    await manager.load_all()
    versions = await manager.versions("llm-key", consumer=READER)
    assert [v.version for v in versions] == ["2", "1"]
    status = await manager.rollback("llm-key", consumer=READER)
    assert (status.version, status.pinned) == ("1", "1")
    await manager.refresh("llm-key")  # still pinned
    assert (await manager.get("llm-key", consumer=READER)).get_secret_value() == "value-number-one"
    assert any(e.action == "secret.rolled_back" and e.fields["version"] == "1" for e in events)
    status = await manager.unpin("llm-key", consumer=READER)
    assert (status.version, status.pinned) == ("2", None)


async def test_rollback_without_provider_versions_uses_values_held_in_memory(
    clock: Clock, tmp_path: Path
) -> None:
    write_atomic(tmp_path / "llm", {"key": "value-number-one"})
    files = FileSecretProvider(tmp_path, watch=False)
    manager = make(clock, files, spec(key="llm/key", provider="files"))
    await manager.load_all()
    with pytest.raises(UnsupportedSecretOperationError):
        await manager.rollback("llm-key", consumer=READER)
    write_atomic(tmp_path / "llm", {"key": "value-number-two"})
    await manager.refresh("llm-key")
    assert len(await manager.versions("llm-key", consumer=READER)) == 2
    await manager.rollback("llm-key", consumer=READER)
    clock.advance(10_000)  # frozen on the held value: neither TTL nor max-stale apply
    await manager.tick()
    assert manager.get_cached("llm-key", consumer=READER).get_secret_value() == "value-number-one"
    await manager.unpin("llm-key", consumer=READER)
    assert manager.get_cached("llm-key", consumer=READER).get_secret_value() == "value-number-two"


async def test_validators_reject_values_at_startup(clock: Clock) -> None:
    memory = MemorySecretProvider()
    memory.put("k", "too short")
    manager = make(clock, memory, spec())
    manager.add_validator("llm-key", api_key)
    readiness = await manager.load_all()
    assert readiness.missing == {"llm-key": "SecretValidationError"}
    with pytest.raises(SecretUnavailableError):
        await manager.get("llm-key", consumer=READER)


def binding(
    name: str, agents: list[str], secrets: list[dict[str, object]], provider: str
) -> SecretBinding:
    return SecretBinding.model_validate(
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "SecretBinding",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "provider": provider,
                "agents": agents,
                "secrets": secrets,
                "refreshIntervalSeconds": 60,
            },
        }
    )


def test_catalog_from_bindings_grants_and_conflicts() -> None:
    k8s = binding(
        "llm-keys",
        ["writer", "reviewer"],
        [{"name": "openai", "kubernetes": {"secretName": "llm", "key": "openai"}}],
        "kubernetes",
    )
    aws = binding(
        "db",
        ["writer"],
        [{"name": "db-password", "remote": {"key": "prod/db", "property": "password"}}],
        "aws",
    )
    catalog = SecretCatalog.from_bindings([k8s, aws], grants={"db-password": ["component:state"]})
    openai = catalog.get("openai")
    assert openai is not None
    assert openai.consumers == {"agent:writer", "agent:reviewer"}
    assert openai.ref == SecretRef("llm/openai")
    assert openai.refresh_seconds == 60
    assert catalog.find_kubernetes("llm", "openai") == openai
    db = catalog.get("db-password")
    assert db is not None
    assert db.provider == "aws"
    assert db.ref == SecretRef("prod/db", "password")
    assert db.consumers == {"agent:writer", "component:state"}
    clash = binding("other", ["x"], [{"name": "openai", "remote": {"key": "elsewhere"}}], "vault")
    with pytest.raises(ValueError, match="bound twice"):
        catalog.add_binding("other", clash.spec)


def test_catalog_from_the_operators_resolved_secrets(tmp_path: Path) -> None:
    class Resolved:
        def __init__(self, **kw: object) -> None:
            self.__dict__.update(
                {
                    "file": None,
                    "key": None,
                    "property": None,
                    "version": None,
                    "refresh_interval_seconds": 300,
                    **kw,
                }
            )

    catalog = SecretCatalog()
    catalog.add_resolved(
        "writer",
        [
            Resolved(
                name="openai",
                provider="kubernetes",
                binding="b",
                file=str(tmp_path / "llm" / "openai"),
            ),
            Resolved(name="db", provider="vault", binding="b", key="app/db", property="pw"),
        ],
        secrets_dir=tmp_path,
    )
    assert catalog.specs["openai"].ref == SecretRef("llm/openai")
    assert catalog.specs["db"].ref == SecretRef("app/db", "pw")
    assert catalog.specs["db"].consumers == {"agent:writer"}


async def test_factory_builds_providers_and_applies_dev_overrides_only_in_development(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    k8s = binding(
        "llm-keys",
        ["writer"],
        [{"name": "openai-key", "kubernetes": {"secretName": "llm", "key": "openai"}}],
        "kubernetes",
    )
    write_atomic(tmp_path / "llm", {"openai": "from-the-mounted-secret"})
    monkeypatch.setenv(override_variable("openai-key"), "from-the-dev-environment")
    settings = SecretsSettings(env_file=None, watch_files=False)
    dev = build_secret_manager(settings, secrets_dir=tmp_path, development=True, bindings=[k8s])
    assert (await dev.get("openai-key", consumer="agent:writer")).get_secret_value() == (
        "from-the-dev-environment"
    )
    with caplog.at_level(logging.WARNING):
        prod = build_secret_manager(
            settings, secrets_dir=tmp_path, development=False, bindings=[k8s]
        )
    assert (await prod.get("openai-key", consumer="agent:writer")).get_secret_value() == (
        "from-the-mounted-secret"
    )
    assert any(getattr(r, "event_type", "") == "secret.override_ignored" for r in caplog.records)
    assert set(prod.providers) == {"kubernetes"}
    await dev.aclose()
    await prod.aclose()


async def test_audit_reads_once_per_consumer_and_version(clock: Clock) -> None:
    memory = MemorySecretProvider()
    memory.put("k", "value-number-one")
    manager = make(clock, memory, spec())
    log = AuditLog()
    events: list[AuditEvent] = []
    log.add_sink(events.append)
    manager.audit = log
    for _ in range(5):
        await manager.get("llm-key", consumer=READER)
    memory.put("k", "value-number-two")
    await manager.refresh("llm-key")
    await manager.get("llm-key", consumer=READER)
    reads = [e for e in events if e.action == "secret.read"]
    assert [e.fields["version"] for e in reads] == ["1", "2"]
    assert all(e.fields["consumer"] == READER for e in reads)
