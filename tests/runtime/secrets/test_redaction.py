"""Secrets never reach logs, tracebacks, error bodies or reprs — checked by capturing the
real output (the runtime's own logging configuration, rendered JSON and console)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import structlog
from fastapi import FastAPI
from pydantic import SecretStr

from agentfleet_runtime.api.problems import install_problem_handlers
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.errors import DependencyConnectionError
from agentfleet_runtime.observability.logging import configure_logging
from agentfleet_runtime.providers.factory import ProviderSettings, ResolvedProvider
from agentfleet_runtime.secrets import (
    REDACTOR,
    SecretAccessDeniedError,
    SecretCatalog,
    SecretManager,
    SecretRef,
    SecretSpec,
    SecretUnavailableError,
    install_log_redaction,
)
from agentfleet_runtime.secrets.providers.files import FileSecretProvider, write_atomic
from agentfleet_runtime.secrets.providers.memory import MemorySecretProvider
from agentfleet_runtime.secrets.redaction import MASK, Redactor, redact_attributes

SECRET = "sk-live-Zq8vN3xT7yP2wR5aB9cD"
AGENT = "agent:writer"


@pytest.fixture
async def manager() -> SecretManager:
    memory = MemorySecretProvider()
    memory.put("k", SECRET)
    catalog = SecretCatalog()
    catalog.add(SecretSpec("openai", "memory", SecretRef("k"), frozenset({AGENT})))
    manager = SecretManager(catalog, {"memory": memory})  # the process-wide REDACTOR
    await manager.load_all()
    return manager


@pytest.fixture(params=["json", "console"])
def log_output(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """The runtime's own logging configuration, its handler writing to a buffer."""
    configure_logging("DEBUG", request.param)  # installs the redaction itself
    assert install_log_redaction() == 0  # already there; idempotent
    buffer = io.StringIO()
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    logging.getLogger().handlers.clear()
    structlog.reset_defaults()


async def test_values_never_reach_log_output(
    manager: SecretManager, log_output: io.StringIO
) -> None:
    value = (await manager.get("openai", consumer=AGENT)).get_secret_value()
    log = logging.getLogger("agentfleet.test")
    log.info("the key is %s", value)
    log.warning("calling upstream", extra={"header": f"Bearer {value}", "api_key": value})
    try:
        raise RuntimeError(f"upstream rejected key {value}")
    except RuntimeError:
        log.exception("request failed")
    structlog.get_logger("agentfleet.test").info(
        "structlog event", token=value, nested={"v": value}
    )
    logging.getLogger("agentfleet.audit").info("secret.read", extra={"secret": "openai"})
    err = log_output.getvalue()
    assert SECRET not in err
    assert err.count(MASK) >= 5
    assert "upstream rejected key" in err
    assert "Traceback" in err
    assert "openai" in err  # secret *names* are not masked


async def test_logging_error_reports_hold_no_values(
    manager: SecretManager, log_output: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    """When a handler fails, ``logging`` prints the record's message and arguments to
    stderr: the redacting formatter scrubs the record itself, so that report is clean."""
    value = (await manager.get("openai", consumer=AGENT)).get_secret_value()
    log_output.close()  # the handler's stream fails on write
    logging.getLogger("agentfleet.test").warning("key %s", value)
    err = capsys.readouterr().err
    assert "Logging error" in err
    assert SECRET not in err


def test_token_shapes_and_sensitive_keys_are_masked_without_registration() -> None:
    redactor = Redactor()
    text = redactor.redact(
        "anthropic sk-ant-api03-abcdefghijkl openai sk-proj-abcdefghijklmnopqrstu "
        "aws AKIAIOSFODNN7EXAMPLE vault hvs.CAESIabcdefghijklmnopqrstuv "
        "auth Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig"
    )
    for leaked in ("sk-ant-api03", "sk-proj-abc", "AKIAIOSFODNN7", "hvs.CAES", "eyJhbGci"):
        assert leaked not in text
    assert "Bearer " + MASK in text
    attrs = redact_attributes(
        {
            "http.request.header.authorization": "Basic dXNlcjpwYXNz",
            "secret": "openai",
            "password": "hunter2",
            "input_tokens": 12,
            "key": SecretStr("x"),
        },
        redactor,
    )
    assert attrs == {
        "http.request.header.authorization": MASK,
        "secret": "openai",
        "password": MASK,
        "input_tokens": 12,
        "key": "**********",
    }


async def test_reprs_and_errors_hold_no_values(
    manager: SecretManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = await manager.get_value("openai", consumer=AGENT)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("AGENTFLEET_SECRETS__VAULT__TOKEN", SECRET)
    settings = RuntimeSettings()
    assert settings.secrets.vault.token is not None
    assert settings.secrets.vault.token.get_secret_value() == SECRET
    write_atomic(tmp_path / "s", {"k": SECRET})
    objects = [
        value,
        manager,
        manager.status("openai"),
        manager.statuses(),
        settings,
        settings.secrets,
        ProviderSettings(openai_api_key=SECRET),
        ResolvedProvider(provider="openai", base_url=None, api_key=SECRET),  # type: ignore[arg-type]
        await FileSecretProvider(tmp_path).get(SecretRef("s/k")),
        REDACTOR,
    ]
    for obj in objects:
        assert SECRET not in repr(obj), type(obj)
        assert SECRET not in str(obj), type(obj)
    for error in (
        SecretAccessDeniedError("openai", "agent:x"),
        SecretUnavailableError("openai", "provider down"),
        DependencyConnectionError("AWS Secrets Manager, secret 'openai': unreachable"),
    ):
        assert SECRET not in str(error)
        assert SECRET not in repr(error.extensions)


async def test_error_bodies_hold_no_values(manager: SecretManager) -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/denied")
    async def denied() -> str:
        return (await manager.get("openai", consumer="agent:intruder")).get_secret_value()

    @app.get("/crash")
    async def crash() -> str:
        value = (await manager.get("openai", consumer=AGENT)).get_secret_value()
        raise RuntimeError(f"unexpected failure with {value}")

    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        denied_response = await client.get("/denied")
        crash_response = await client.get("/crash")
    assert denied_response.status_code == 403
    assert denied_response.json()["type"].endswith("/secret-access-denied")
    assert crash_response.status_code == 500
    for response in (denied_response, crash_response):
        assert SECRET not in response.text
