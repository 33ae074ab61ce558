"""Types shared by every agentfleet custom resource."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

GROUP = "agentfleet.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: RFC 1123 label: what Kubernetes accepts as a Service / object name used in DNS.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: RFC 1035 label: what Kubernetes accepts as a *Service* name (it must start with a letter).
#: The names of agentfleet resources become Service names and label values, so they follow it.
DNS_1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
#: RFC 1123 subdomain: what Kubernetes accepts for most object names.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

ObjectName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
#: The name of an agentfleet resource (see :data:`DNS_1035_LABEL`).
ResourceName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_1035_LABEL)]
SecretName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
SecretKey = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


def cel_rules(*rules: dict[str, str]) -> JsonDict:
    """``json_schema_extra`` that puts CEL rules (``x-kubernetes-validations``) on a model's
    node of the generated CRD schema, so the API server enforces a cross-field validator
    where it applies. Each rule is ``{"rule": ..., "message": ...}`` (``fieldPath``,
    ``reason`` optional); ``self`` is the model's object, after defaulting.

    Usage: ``model_config = ConfigDict(json_schema_extra=cel_rules({...}))``. Every model
    with a ``model_validator`` needs a twin rule here (a test checks it)."""
    return {"x-kubernetes-validations": [dict(rule) for rule in rules]}


class CamelModel(BaseModel):
    """Base of every manifest model: snake_case in Python, camelCase in YAML, no unknown
    fields (a typo in a manifest is an error that names the field, never silently ignored)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )

    def to_manifest(self) -> dict[str, Any]:
        """The object as it appears in YAML: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(CamelModel):
    """A Kubernetes-style condition (``metav1.Condition``)."""

    type: Annotated[
        str, Field(min_length=1, max_length=316, description="Condition type, e.g. Ready.")
    ]
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Annotated[
        str,
        Field(
            default="Unknown",
            max_length=1024,
            pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
            description="CamelCase machine-readable reason.",
        ),
    ]
    message: Annotated[
        str, Field(default="", max_length=32768, description="Human-readable detail.")
    ]
    last_transition_time: datetime | None = Field(
        default=None, description="When the status last changed."
    )
    observed_generation: Annotated[
        int | None,
        Field(default=None, ge=0, description="The metadata.generation this was computed from."),
    ]


class ResourceStatus(CamelModel):
    """Status every agentfleet resource reports: ``kubectl wait --for=condition=Ready`` and
    Argo CD's health checks read ``conditions`` and ``observedGeneration``."""

    observed_generation: Annotated[
        int | None,
        Field(
            default=None,
            ge=0,
            description="The metadata.generation the conditions were computed from.",
        ),
    ]
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Latest observations of the resource's state, one per type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class SecretKeyRef(CamelModel):
    """A key of a Kubernetes Secret in the resource's namespace."""

    name: SecretName = Field(description="The Secret's name.")
    key: SecretKey = Field(description="The key within the Secret.")


class LocalObjectReference(CamelModel):
    """A reference to another agentfleet resource in the same namespace."""

    name: ResourceName = Field(description="The referenced object's name.")


class ObjectMeta(BaseModel):
    """The parts of ``metadata`` agentfleet reads; everything else Kubernetes sets is kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_1035_LABEL)]
    namespace: Annotated[str, Field(default="default", max_length=63, pattern=DNS_LABEL)]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None


class PrinterColumn(BaseModel):
    """A column of ``kubectl get`` (``additionalPrinterColumns``)."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0


class Resource(BaseModel):
    """Base of the four custom resources: ``apiVersion``, ``kind``, ``metadata``, ``spec``,
    ``status``. Subclasses set the CRD facts as class variables."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()
    CATEGORIES: ClassVar[tuple[str, ...]] = ("agentfleet",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = ()
    #: The longest ``metadata.name`` (names derived from it must stay DNS labels).
    NAME_MAX_LENGTH: ClassVar[int] = 63
    #: CEL rules on ``spec`` (``x-kubernetes-validations``), mirroring the model validators.
    SPEC_CEL_RULES: ClassVar[tuple[dict[str, str], ...]] = ()

    api_version: Annotated[str, Field(alias="apiVersion", pattern=rf"^{GROUP}/{VERSION}$")] = (
        API_VERSION
    )
    kind: str
    metadata: ObjectMeta

    def to_manifest(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


READY_COLUMN = PrinterColumn(
    name="Ready",
    type="string",
    json_path='.status.conditions[?(@.type=="Ready")].status',
    description="Whether the resource is ready",
)
REASON_COLUMN = PrinterColumn(
    name="Reason",
    type="string",
    json_path='.status.conditions[?(@.type=="Ready")].reason',
    description="Why the resource is (not) ready",
    priority=1,
)
AGE_COLUMN = PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")
