"""AWS Secrets Manager (``pip install 'agentfleet-runtime[aws]'``, boto3).

``ref.key`` is the secret's name or ARN; ``ref.version`` a version id, or a staging label
(``AWSCURRENT``, ``AWSPREVIOUS``, ``AWSPENDING``); ``ref.property`` a field of a JSON
secret. Versions: ``ListSecretVersionIds``. Expiry: AWS secrets do not expire, but a secret
with rotation on has a ``NextRotationDate``, reported as ``expires_at``; "renewal" is
``RotateSecret`` (AWS runs the rotation Lambda, which writes the new version).
Credentials come from boto3's usual chain (IRSA / Pod Identity in EKS).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from agentfleet_runtime.errors import (
    DependencyAuthError,
    DependencyConnectionError,
    DependencyError,
    DependencyTimeoutError,
    RateLimitedError,
    UpstreamBadRequestError,
    UpstreamServerError,
    status_error,
)
from agentfleet_runtime.secrets.base import (
    SecretProvider,
    SecretRef,
    SecretValue,
    SecretVersion,
    select_property,
)
from agentfleet_runtime.secrets.errors import SecretNotFoundError
from agentfleet_runtime.secrets.providers._sdk import blocking_translated, require

log = logging.getLogger(__name__)

STAGES = frozenset({"AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"})
_AUTH = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "DecryptionFailure",
    }
)


class AwsSecretsManagerProvider(SecretProvider):
    name = "aws"
    supports_versions = True
    supports_renewal = True

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        max_attempts: int = 2,
        client: Any = None,
    ) -> None:
        boto3 = require("boto3", provider=self.name, extra="aws")
        require("botocore", provider=self.name, extra="aws")
        from botocore.config import Config

        if client is None:
            session = boto3.session.Session(profile_name=profile)
            client = session.client(
                "secretsmanager",
                region_name=region,
                endpoint_url=endpoint_url,
                config=Config(
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                    retries={"max_attempts": max_attempts, "mode": "standard"},
                ),
            )
        self._client = client

    async def get(self, ref: SecretRef) -> SecretValue:
        return await self._call(lambda: self._get(ref), ref)

    def _get(self, ref: SecretRef) -> SecretValue:
        kwargs: dict[str, str] = {"SecretId": ref.key}
        if ref.version in STAGES:
            kwargs["VersionStage"] = ref.version
        elif ref.version:
            kwargs["VersionId"] = ref.version
        resp = self._client.get_secret_value(**kwargs)
        if "SecretString" in resp:
            raw = resp["SecretString"]
        else:
            binary: bytes = resp.get("SecretBinary", b"")
            try:
                raw = binary.decode("utf-8")
            except UnicodeDecodeError:
                raw = base64.b64encode(binary).decode("ascii")
        next_rotation, rotation = self._rotation(ref.key)
        return SecretValue(
            value=SecretStr(select_property(raw, ref, provider=self.name)),
            version=resp.get("VersionId"),
            created_at=resp.get("CreatedDate"),
            expires_at=next_rotation,
            renewable=rotation,
        )

    def _rotation(self, key: str) -> tuple[datetime | None, bool]:
        """NextRotationDate and whether rotation is on (needs DescribeSecret; without
        that permission, no expiry is known)."""
        botocore = require("botocore.exceptions", provider=self.name, extra="aws")
        try:
            desc = self._client.describe_secret(SecretId=key)
        except botocore.ClientError:
            log.debug("DescribeSecret failed; no rotation metadata", extra={"secret": key})
            return None, False
        return desc.get("NextRotationDate"), bool(desc.get("RotationEnabled"))

    async def versions(self, ref: SecretRef) -> list[SecretVersion]:
        def call() -> list[SecretVersion]:
            resp = self._client.list_secret_version_ids(SecretId=ref.key, IncludeDeprecated=False)
            versions = [
                SecretVersion(
                    version=v["VersionId"],
                    created_at=v.get("CreatedDate"),
                    current="AWSCURRENT" in v.get("VersionStages", ()),
                    stages=tuple(v.get("VersionStages", ())),
                )
                for v in resp.get("Versions", [])
            ]
            # Newest first: AWSCURRENT, AWSPENDING, AWSPREVIOUS, then by creation time
            # (CreatedDate has one-second resolution).
            rank = {"AWSCURRENT": 0, "AWSPENDING": 1, "AWSPREVIOUS": 2}
            versions.sort(
                key=lambda v: (
                    min((rank.get(s, 3) for s in v.stages), default=3),
                    -(v.created_at.timestamp() if v.created_at else 0.0),
                )
            )
            return versions

        return await self._call(call, ref)

    async def renew(self, ref: SecretRef, current: SecretValue) -> SecretValue:
        await self._call(lambda: self._client.rotate_secret(SecretId=ref.key), ref)
        return await self.get(SecretRef(ref.key, ref.property))

    async def _call[T](self, fn: Callable[[], T], ref: SecretRef) -> T:
        return await blocking_translated(fn, lambda exc: self._translate(exc, ref))

    def _translate(self, exc: Exception, ref: SecretRef) -> DependencyError:
        from botocore import exceptions as bx

        dep = self.dependency
        what = f"AWS Secrets Manager, secret {ref.key!r}"
        if isinstance(exc, bx.ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
            detail = f"{what}: {code}"
            if code == "ResourceNotFoundException":
                return SecretNotFoundError(detail, dependency=dep)
            if code in _AUTH:
                return DependencyAuthError(detail, dependency=dep)
            if code in ("ThrottlingException", "TooManyRequestsException"):
                return RateLimitedError(detail, dependency=dep)
            if code == "InternalServiceError":
                return UpstreamServerError(detail, dependency=dep)
            if code in ("InvalidRequestException", "InvalidParameterException"):
                return UpstreamBadRequestError(detail, dependency=dep)
            return status_error(status, detail, dependency=dep)
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            return DependencyAuthError(f"{what}: no AWS credentials", dependency=dep)
        if isinstance(exc, bx.ConnectTimeoutError | bx.ReadTimeoutError):
            return DependencyTimeoutError(f"{what}: timed out", dependency=dep)
        if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionError):
            return DependencyConnectionError(f"{what}: unreachable", dependency=dep)
        return DependencyConnectionError(f"{what}: {type(exc).__name__}", dependency=dep)
