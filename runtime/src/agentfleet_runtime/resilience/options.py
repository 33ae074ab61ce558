"""Options of the resilience layer: the ResiliencePolicy's per-category options (validated
by the CRD models), the environment's defaults beneath them, the feature flags, and the
runtime-wide settings (``AGENTFLEET_RESILIENCE__*``).

Precedence for one dependency's options (highest first):

1. what the agent's ResiliencePolicy *sets* (``model_fields_set``, field by field, nested);
2. the environment's defaults (:func:`environment_defaults`: development retries less and
   recovers sooner, so that a developer sees failures quickly);
3. the CRD's built-in defaults.

Feature flags switch a mechanism off everywhere at once, without a restart (admin API or
a flags file that is re-read when it changes).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from agentfleet_crds.v1alpha1.resiliencepolicy import (
    CategoryPolicy,
    ResiliencePolicySpec,
    ServiceCategory,
)

__all__ = [
    "FeatureFlags",
    "PipelineOptions",
    "ResilienceSettings",
    "category_policy",
    "environment_defaults",
    "merge_set_fields",
]

log = logging.getLogger(__name__)


class FeatureFlags(BaseModel):
    """Each resilience mechanism can be switched off at runtime (``false``): the pipeline
    then skips it. Reloadable: ``PATCH /api/v1/admin/resilience/flags`` or the flags file."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    retry: bool = True
    circuit_breaker: bool = True
    rate_limit: bool = True
    bulkhead: bool = True
    timeout: bool = True
    retry_budget: bool = True
    fallback: bool = True
    #: Stop calling a tool that keeps failing within one turn.
    tool_call_cap: bool = True
    #: Record permanently failed turns.
    dead_letters: bool = True


class ResilienceSettings(BaseModel):
    """``AGENTFLEET_RESILIENCE__*``: runtime-wide settings of the resilience layer (the
    per-dependency options come from each agent's ResiliencePolicy)."""

    #: Deprecated: a bearer token for the admin API (breaker control, flags), accepted
    #: besides the operator tenant's ``admin`` credentials (responses carry
    #: ``Deprecation``). Unset: only ``admin`` credentials.
    admin_token: SecretStr | None = None
    flags: FeatureFlags = Field(default_factory=FeatureFlags)
    #: A JSON or YAML file of flags (e.g. a mounted ConfigMap key), re-read when it
    #: changes; its values override ``flags``.
    flags_file: Path | None = None
    flags_poll_seconds: float = Field(default=5.0, gt=0)
    #: Circuit-breaker state across replicas: ``shared`` through the state backend (Redis),
    #: ``local`` per process; ``auto`` = shared when the state backend is Redis.
    breaker_sync: Literal["auto", "local", "shared"] = "auto"
    #: How often a breaker in use re-reads the shared state (in the background, never in
    #: the call's path).
    breaker_sync_interval_seconds: float = Field(default=1.0, gt=0)
    #: Client-side rate limits: per process (``local``, aiolimiter) or one bucket shared
    #: by every replica (``shared``, the state backend's token bucket: a Redis round trip
    #: per call when a limit is set).
    rate_limit_scope: Literal["local", "shared"] = "local"
    #: Longest wait for a rate-limit permit before the call is refused.
    rate_limit_max_wait_seconds: float = Field(default=30.0, ge=0)
    #: Calls of one tool that may fail in one turn before the model is told to stop.
    tool_failures_per_turn: int = Field(default=2, ge=1)
    #: Dead letters kept (oldest dropped first).
    dead_letters_max: int = Field(default=10_000, ge=1)


def merge_set_fields[M: BaseModel](base: M, override: M) -> M:
    """``base`` with every field ``override`` explicitly sets (nested models merged field
    by field)."""
    updates: dict[str, Any] = {}
    for name in override.model_fields_set:
        value = getattr(override, name)
        current = getattr(base, name)
        if isinstance(value, BaseModel) and isinstance(current, type(value)):
            updates[name] = merge_set_fields(current, value)
        else:
            updates[name] = value
    return base.model_copy(update=updates) if updates else base


def environment_defaults(environment: str) -> ResiliencePolicySpec:
    """The defaults of an environment (``development``, ``staging``, ``production``).

    Development fails fast: two attempts, delays capped at 2 s, breakers open after 3
    failures and probe again after 5 s. Staging and production use the CRD's defaults.
    """
    spec = ResiliencePolicySpec()
    if environment != "development":
        return spec
    updates: dict[str, CategoryPolicy] = {}
    for category in ServiceCategory:
        policy: CategoryPolicy = getattr(spec, category.value)
        updates[category.value] = policy.model_copy(
            update={
                "retry": policy.retry.model_copy(
                    update={
                        "max_attempts": 2,
                        "max_delay_seconds": min(2.0, policy.retry.max_delay_seconds),
                        "base_delay_seconds": min(
                            policy.retry.base_delay_seconds, 2.0, policy.retry.max_delay_seconds
                        ),
                    }
                ),
                "circuit_breaker": policy.circuit_breaker.model_copy(
                    update={"failure_threshold": 3, "recovery_timeout_seconds": 5.0}
                ),
            }
        )
    return spec.model_copy(update=updates)


def category_policy(
    category: ServiceCategory | str,
    policy: ResiliencePolicySpec | None = None,
    *,
    environment: str = "production",
) -> CategoryPolicy:
    """The effective options of one category: the environment's defaults with what
    ``policy`` sets on top."""
    name = ServiceCategory(category).value
    base: CategoryPolicy = getattr(environment_defaults(environment), name)
    if policy is None or name not in policy.model_fields_set:
        return base
    override: CategoryPolicy = getattr(policy, name)
    return merge_set_fields(base, override)


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """Everything one dependency's pipeline is built from."""

    category: ServiceCategory
    policy: CategoryPolicy
    #: Retries are someone else's job (a service mesh retries this hop): one attempt.
    mesh_retries: bool = False
    #: Whether a failed attempt may have had effects (a tool call): then only errors that
    #: prove the request was not processed (rate limited, overloaded) are retried.
    idempotent: bool = True


def load_flags_file(path: Path, current: FeatureFlags) -> FeatureFlags:
    """Flags from a JSON or YAML file, over ``current``."""
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of flag names to booleans")
    return current.model_copy(
        update=FeatureFlags.model_validate(data).model_dump(exclude_unset=True)
    )
