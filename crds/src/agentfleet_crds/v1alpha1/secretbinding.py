"""The ``SecretBinding`` custom resource: which secrets, from which provider, reach which
agents. Kubernetes Secrets are mounted as files (rotation reaches pods without a restart);
cloud references are rendered into the runtime config for the runtime's secret providers."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from agentfleet_crds.v1alpha1.common import (
    AGE_COLUMN,
    READY_COLUMN,
    REASON_COLUMN,
    CamelModel,
    PrinterColumn,
    Resource,
    ResourceName,
    ResourceStatus,
    SecretKey,
    SecretName,
    cel_rules,
)


class SecretProviderName(StrEnum):
    """Where the secrets live."""

    KUBERNETES = "kubernetes"
    AWS = "aws"
    AZURE = "azure"
    GCP = "gcp"
    VAULT = "vault"


class KubernetesSecretSource(CamelModel):
    """A key of a Kubernetes Secret in the binding's namespace."""

    secret_name: SecretName = Field(description="The Secret's name.")
    key: SecretKey = Field(description="The key within the Secret.")


class RemoteSecretSource(CamelModel):
    """A secret in a cloud secret manager or Vault."""

    key: Annotated[
        str,
        Field(min_length=1, max_length=2048, description="ARN, path or name in the provider."),
    ]
    property: Annotated[
        str | None,
        Field(default=None, max_length=256, description="A field of a JSON-valued secret."),
    ]
    version: Annotated[
        str | None,
        Field(default=None, max_length=256, description="Pinned version; latest if unset."),
    ]


class BoundSecret(CamelModel):
    """One secret: its logical name and exactly one source."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            {
                "rule": "has(self.kubernetes) != has(self.remote)",
                "message": "exactly one of kubernetes or remote must be set",
            }
        )
    )

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$",
            description="The logical name agents and configs refer to.",
        ),
    ]
    kubernetes: KubernetesSecretSource | None = Field(
        default=None, description="For provider kubernetes."
    )
    remote: RemoteSecretSource | None = Field(
        default=None, description="For the cloud providers and Vault."
    )

    @model_validator(mode="after")
    def _one_source(self) -> BoundSecret:
        if (self.kubernetes is None) == (self.remote is None):
            raise ValueError("exactly one of kubernetes or remote must be set")
        return self


class SecretBindingSpec(CamelModel):
    """Which secrets, from which provider, reach which agents."""

    provider: SecretProviderName = Field(description="Where the secrets live.")
    secrets: list[BoundSecret] = Field(
        min_length=1, max_length=256, description="The secrets to bind."
    )
    agents: list[ResourceName] = Field(
        min_length=1,
        max_length=256,
        description="The Agents (same namespace) allowed to read these secrets.",
    )
    refresh_interval_seconds: Annotated[
        int,
        Field(default=300, ge=10, le=86_400, description="How often remote secrets are re-read."),
    ]

    @model_validator(mode="after")
    def _sources_match_provider(self) -> SecretBindingSpec:
        for i, secret in enumerate(self.secrets):
            if self.provider is SecretProviderName.KUBERNETES and secret.kubernetes is None:
                raise ValueError(f"secrets[{i}]: provider kubernetes needs a kubernetes source")
            if self.provider is not SecretProviderName.KUBERNETES and secret.remote is None:
                raise ValueError(f"secrets[{i}]: provider {self.provider} needs a remote source")
        return self


class SecretBindingStatus(ResourceStatus):
    """What the operator observed of a SecretBinding."""

    resolved: list[str] = Field(default_factory=list, description="Secrets that resolved.")
    missing: list[str] = Field(
        default_factory=list, description="Secrets that did not resolve (see the Ready message)."
    )
    agents: list[str] = Field(
        default_factory=list, description="The bound Agents that exist and receive the secrets."
    )


class SecretBinding(Resource):
    """Secrets from Kubernetes, a cloud secret manager or Vault, bound to Agents."""

    KIND: ClassVar[str] = "SecretBinding"
    PLURAL: ClassVar[str] = "secretbindings"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("sb",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn(name="Provider", type="string", json_path=".spec.provider"),
        READY_COLUMN,
        REASON_COLUMN,
        AGE_COLUMN,
    )
    SPEC_CEL_RULES: ClassVar[tuple[dict[str, str], ...]] = (
        {
            "rule": "self.provider == 'kubernetes' ? self.secrets.all(s, has(s.kubernetes))"
            " : self.secrets.all(s, has(s.remote))",
            "message": "every secret needs a kubernetes source when provider is kubernetes, "
            "a remote source otherwise",
        },
    )

    kind: Literal["SecretBinding"] = "SecretBinding"
    spec: SecretBindingSpec
    status: SecretBindingStatus | None = None
