"""Errors of the artifact store, in the runtime's hierarchy (:mod:`agentfleet_runtime.errors`)::

    QuotaExceededError
    └── ArtifactQuotaExceededError   507 artifact-quota-exceeded   (tenant quota, S3 QuotaExceeded)
    UpstreamBadRequestError
    └── ArtifactTooLargeError        413 artifact-too-large        (upload limit, S3 EntityTooLarge)
    DependencyAuthError
    └── ArtifactStoreDeniedError     502 artifact-store-denied     (S3 AccessDenied, bad keys)
    DependencyError
    └── ArtifactStoreUnavailableError 503 artifact-store-unavailable (after retries; Retry-After)

None of them is retried by the resilience pipeline: the first three cannot succeed by
trying again, and the last is what the pipeline raises *after* its retries.

Why 507 for a quota: 413 says "this request is too large" (it would be accepted if it were
smaller); 507 (Insufficient Storage) says "nothing more can be stored for you" — a client
must delete artifacts (or wait for them to expire) before any upload succeeds.
"""

from __future__ import annotations

from typing import Any

from agentfleet_runtime.errors import (
    DependencyAuthError,
    DependencyError,
    QuotaExceededError,
    UpstreamBadRequestError,
)

DEPENDENCY = "artifacts"


class ArtifactQuotaExceededError(QuotaExceededError):
    status = 507
    slug = "artifact-quota-exceeded"
    title = "The artifact storage quota is exhausted"

    def __init__(self, detail: str, *, dependency: str = DEPENDENCY, **extensions: Any) -> None:
        super().__init__(detail, dependency=dependency, **extensions)


class ArtifactTooLargeError(UpstreamBadRequestError):
    status = 413
    slug = "artifact-too-large"
    title = "The artifact is too large"

    def __init__(self, detail: str, *, dependency: str = DEPENDENCY, **extensions: Any) -> None:
        super().__init__(detail, dependency=dependency, **extensions)


class ArtifactStoreDeniedError(DependencyAuthError):
    slug = "artifact-store-denied"
    title = "The artifact store refused the request"

    def __init__(self, detail: str, *, dependency: str = DEPENDENCY, **extensions: Any) -> None:
        super().__init__(detail, dependency=dependency, **extensions)


class ArtifactStoreUnavailableError(DependencyError):
    status = 503
    slug = "artifact-store-unavailable"
    title = "The artifact store is unavailable"

    def __init__(
        self,
        detail: str,
        *,
        dependency: str = DEPENDENCY,
        retry_after: float | None = 30.0,
        **extensions: Any,
    ) -> None:
        super().__init__(detail, dependency=dependency, retry_after=retry_after, **extensions)
        self.retry_after = retry_after
