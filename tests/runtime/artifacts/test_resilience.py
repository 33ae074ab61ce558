"""S3 calls through the resilience pipeline ``artifacts``, against moto over real HTTP:

* a network error (the project's TCP proxy refusing connections for the first attempt) is
  retried, and the call succeeds;
* a store that stays down fails after the pipeline's attempts, as
  ``artifact-store-unavailable`` (503, Retry-After);
* a non-retryable S3 error (a real ``AccessDenied`` from moto's IAM enforcement) takes
  exactly one attempt and maps to ``artifact-store-denied``;
* S3's quota and size errors map to ``artifact-quota-exceeded`` / ``artifact-too-large``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from prometheus_client import REGISTRY

from agentfleet_runtime.artifacts import (
    ArtifactKind,
    ArtifactQuotaExceededError,
    ArtifactService,
    ArtifactSettings,
    ArtifactStoreDeniedError,
    ArtifactStoreUnavailableError,
    ArtifactTooLargeError,
)
from agentfleet_runtime.artifacts.errors import DEPENDENCY
from agentfleet_runtime.artifacts.s3 import S3ArtifactStore, translate
from agentfleet_runtime.errors import (
    DependencyConnectionError,
    RateLimitedError,
    UpstreamServerError,
)
from agentfleet_runtime.resilience.events import ResilienceEvent, RetryScheduled
from agentfleet_runtime.resilience.registry import ResilienceRegistry
from agentfleet_runtime.testing.proxy import TcpProxy

from .conftest import MotoS3


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def attempts(outcome: str) -> float:
    return sample(
        "agentfleet_dependency_attempts_total",
        dependency=DEPENDENCY,
        category="storage",
        outcome=outcome,
    )


def retries() -> float:
    return sample(
        "agentfleet_resilience_retries_total",
        dependency=DEPENDENCY,
        category="storage",
        error_class="connection",
    )


@pytest.fixture
async def registry() -> AsyncIterator[ResilienceRegistry]:
    # Production defaults (3 attempts); no waiting between them.
    registry = ResilienceRegistry(environment="production", rand=lambda: 0.0)
    yield registry
    await registry.aclose()


@pytest.fixture
async def proxy(s3: MotoS3) -> AsyncIterator[TcpProxy]:
    host, port = s3.url.removeprefix("http://").split(":")
    async with TcpProxy(host, int(port)) as proxy:
        yield proxy


def artifacts_via(
    s3: MotoS3, url: str, registry: ResilienceRegistry, **settings: Any
) -> ArtifactService:
    pipeline = registry.pipeline(DEPENDENCY, "storage")
    store = S3ArtifactStore(s3.settings(url=url), pipeline=pipeline)
    return ArtifactService(store, ArtifactSettings(**settings))


async def test_a_network_error_is_retried_and_the_put_succeeds(
    s3: MotoS3, proxy: TcpProxy, registry: ResilienceRegistry
) -> None:
    artifacts = artifacts_via(s3, proxy.url, registry, max_bytes_per_tenant=None)
    scheduled: list[RetryScheduled] = []

    def heal(event: ResilienceEvent) -> None:
        if isinstance(event, RetryScheduled) and event.dependency == DEPENDENCY:
            scheduled.append(event)
            proxy.restore()  # the network comes back before the retry

    registry.bus.subscribe(heal)
    failed_before, ok_before, retries_before = (
        attempts("connection"),
        attempts("success"),
        retries(),
    )
    proxy.blackhole(refuse_new=True)  # every new connection is cut at once

    meta = await artifacts.put(
        "acme", b"survives", kind=ArtifactKind.TOOL_RESULT, content_type="text/plain"
    )

    assert len(scheduled) == 1
    assert scheduled[0].error_class == "connection"
    assert attempts("connection") - failed_before == 1
    assert attempts("success") - ok_before == 1
    assert retries() - retries_before == 1
    assert s3.objects() == {f"agentfleet/artifacts/acme/{meta.id}": 8}
    assert (await artifacts.get("acme", meta.id))[1] == b"survives"
    await artifacts.aclose()


async def test_a_store_that_stays_down_is_unavailable_after_the_attempts(
    s3: MotoS3, proxy: TcpProxy, registry: ResilienceRegistry
) -> None:
    artifacts = artifacts_via(s3, proxy.url, registry, max_bytes_per_tenant=None)
    failed_before = attempts("connection")
    proxy.blackhole(refuse_new=True)

    with pytest.raises(ArtifactStoreUnavailableError) as caught:
        await artifacts.put("acme", b"lost", kind=ArtifactKind.TOOL_RESULT, content_type="x/y")

    error = caught.value
    assert error.status == 503
    assert error.slug == "artifact-store-unavailable"
    assert error.retry_after is not None
    assert error.extensions["attempts"] == 3
    assert attempts("connection") - failed_before == 3
    assert isinstance(error.__cause__, DependencyConnectionError)
    proxy.restore()
    assert s3.objects() == {}
    await artifacts.aclose()


async def test_access_denied_is_not_retried(s3: MotoS3, registry: ResilienceRegistry) -> None:
    iam = s3.client("iam")
    iam.create_user(UserName="runtime")
    key = iam.create_access_key(UserName="runtime")["AccessKey"]
    iam.put_user_policy(
        UserName="runtime",
        PolicyName="no-writes",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                    {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"},
                ],
            }
        ),
    )
    settings = s3.settings(
        access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"]
    )
    store = S3ArtifactStore(settings, pipeline=registry.pipeline(DEPENDENCY, "storage"))
    artifacts = ArtifactService(store, ArtifactSettings())
    denied_before = attempts("auth")
    all_before = sum(attempts(o) for o in ("auth", "connection", "serverError", "timeout"))
    s3.require_auth(True)
    try:
        with pytest.raises(ArtifactStoreDeniedError) as caught:
            await artifacts.put("acme", b"x", kind=ArtifactKind.ATTACHMENT, content_type="x/y")
    finally:
        s3.require_auth(False)

    assert "AccessDenied" in caught.value.detail
    assert caught.value.slug == "artifact-store-denied"
    assert attempts("auth") - denied_before == 1  # exactly one attempt
    after = sum(attempts(o) for o in ("auth", "connection", "serverError", "timeout"))
    assert after - all_before == 1
    assert s3.objects() == {}


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "expected", "retryable"),
    [
        ("QuotaExceeded", 403, ArtifactQuotaExceededError, False),
        ("XMinioAdminBucketQuotaExceeded", 400, ArtifactQuotaExceededError, False),
        ("XMinioStorageFull", 507, ArtifactQuotaExceededError, False),
        ("EntityTooLarge", 400, ArtifactTooLargeError, False),
        ("AccessDenied", 403, ArtifactStoreDeniedError, False),
        ("SlowDown", 503, RateLimitedError, True),
        ("InternalError", 500, UpstreamServerError, True),
    ],
)
def test_s3_errors_map_to_the_runtime_hierarchy(
    code: str, status: int, expected: type[Exception], retryable: bool
) -> None:
    error = translate(client_error(code, status))
    assert type(error) is expected
    assert getattr(error, "retryable", None) is retryable


async def test_quota_exceeded_from_the_store_takes_one_attempt(
    registry: ResilienceRegistry,
) -> None:
    """A store answering QuotaExceeded (a client standing in for MinIO, which moto cannot
    emulate) is called once, and the error stays a quota error."""
    calls: list[str] = []

    class QuotaClient:
        def put_object(self, **_: Any) -> None:
            calls.append("put")
            raise client_error("QuotaExceeded", 403)

        def get_paginator(self, _name: str) -> Any:
            class Pages:
                def paginate(self, **_: Any) -> list[dict[str, Any]]:
                    return [{"Contents": []}]

            return Pages()

    store = S3ArtifactStore(
        MotoS3("http://unused").settings(),
        pipeline=registry.pipeline(DEPENDENCY, "storage"),
        client=QuotaClient(),
    )
    artifacts = ArtifactService(store, ArtifactSettings())
    with pytest.raises(ArtifactQuotaExceededError) as caught:
        await artifacts.put("acme", b"x", kind=ArtifactKind.ATTACHMENT, content_type="x/y")
    assert calls == ["put"]
    assert caught.value.status == 507
