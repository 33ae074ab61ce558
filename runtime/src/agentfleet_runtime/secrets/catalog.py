"""Which secrets exist for this runtime, where each lives, and who may read it.

A :class:`SecretCatalog` is built from ``SecretBinding`` resources (the CRD models are the
one source of truth): every bound secret becomes a :class:`SecretSpec` whose consumers are
the binding's agents (``agent:<name>``). Runtime components that need a secret themselves
(the state store's encryption key, say) are granted it explicitly as
``component:<name>``. A consumer may read a secret only if a binding or a grant names it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from agentfleet_crds.v1alpha1.secretbinding import (
    SecretBinding,
    SecretBindingSpec,
    SecretProviderName,
)
from agentfleet_runtime.secrets.base import SecretRef


def agent_consumer(name: str) -> str:
    """The consumer id of an Agent."""
    return f"agent:{name}"


def component_consumer(name: str) -> str:
    """The consumer id of a runtime component (``state``, ``providers``...)."""
    return f"component:{name}"


class ResolvedSecretLike(Protocol):
    """What the operator renders per agent for each bound secret (the runtime config's
    ``ResolvedSecret``): a logical name, its provider and binding, and where it is — a
    mounted ``file`` for Kubernetes Secrets, a remote ``key`` otherwise."""

    # Read-only members, so that a model whose ``provider`` is a str enum satisfies it
    # (``builtins.property``: a member below is named ``property``).
    @builtins.property
    def name(self) -> str: ...
    @builtins.property
    def provider(self) -> str: ...
    @builtins.property
    def binding(self) -> str: ...
    @builtins.property
    def file(self) -> str | None: ...
    @builtins.property
    def key(self) -> str | None: ...
    @builtins.property
    def property(self) -> str | None: ...
    @builtins.property
    def version(self) -> str | None: ...
    @builtins.property
    def refresh_interval_seconds(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SecretSpec:
    """One logical secret: which provider (a key of the manager's providers: ``kubernetes``,
    ``aws``, ``azure``, ``gcp``, ``vault``, ``env``, ``memory``), where in it, who may read
    it, how often to re-read it, and whether readiness waits for it."""

    name: str
    provider: str
    ref: SecretRef
    consumers: frozenset[str] = frozenset()
    refresh_seconds: float | None = None
    required: bool = True
    binding: str | None = None

    def allows(self, consumer: str) -> bool:
        return consumer in self.consumers


@dataclass(slots=True)
class SecretCatalog:
    specs: dict[str, SecretSpec] = field(default_factory=dict)

    def add(self, spec: SecretSpec) -> SecretSpec:
        """Add ``spec``; a second spec of the same name must have the same source (its
        consumers are merged), else ``ValueError``."""
        existing = self.specs.get(spec.name)
        if existing is not None:
            if (existing.provider, existing.ref) != (spec.provider, spec.ref):
                raise ValueError(
                    f"secret {spec.name!r} is bound twice with different sources "
                    f"({existing.binding or '?'} and {spec.binding or '?'})"
                )
            refresh = [s for s in (existing.refresh_seconds, spec.refresh_seconds) if s]
            spec = replace(
                existing,
                consumers=existing.consumers | spec.consumers,
                refresh_seconds=min(refresh) if refresh else None,
                required=existing.required or spec.required,
            )
        self.specs[spec.name] = spec
        return spec

    def add_binding(self, name: str, spec: SecretBindingSpec) -> list[SecretSpec]:
        """The secrets of one SecretBinding (``name`` is the binding's, for audit)."""
        consumers = frozenset(agent_consumer(a) for a in spec.agents)
        added = []
        for bound in spec.secrets:
            if bound.kubernetes is not None:
                ref = SecretRef(f"{bound.kubernetes.secret_name}/{bound.kubernetes.key}")
            else:
                assert bound.remote is not None
                ref = SecretRef(bound.remote.key, bound.remote.property, bound.remote.version)
            added.append(
                self.add(
                    SecretSpec(
                        name=bound.name,
                        provider=spec.provider.value,
                        ref=ref,
                        consumers=consumers,
                        refresh_seconds=float(spec.refresh_interval_seconds),
                        binding=name,
                    )
                )
            )
        return added

    def add_resolved(
        self, agent: str, secrets: Iterable[ResolvedSecretLike], *, secrets_dir: Path
    ) -> list[SecretSpec]:
        """The secrets the operator rendered into agent ``agent``'s runtime config."""
        root = secrets_dir.resolve()
        added = []
        for secret in secrets:
            provider = str(getattr(secret.provider, "value", secret.provider))
            if secret.file is not None:
                path = Path(secret.file).resolve()
                if not path.is_relative_to(root):
                    raise ValueError(f"secret {secret.name!r}: {path} is outside {root}")
                ref = SecretRef(path.relative_to(root).as_posix())
            elif secret.key is not None:
                ref = SecretRef(secret.key, secret.property, secret.version)
            else:
                raise ValueError(f"secret {secret.name!r} has neither a file nor a key")
            added.append(
                self.add(
                    SecretSpec(
                        name=secret.name,
                        provider=provider,
                        ref=ref,
                        consumers=frozenset({agent_consumer(agent)}),
                        refresh_seconds=float(secret.refresh_interval_seconds),
                        binding=secret.binding,
                    )
                )
            )
        return added

    def grant(self, secret: str, *consumers: str) -> SecretSpec:
        """Let ``consumers`` (e.g. ``component:state``) read ``secret`` too."""
        spec = self.specs.get(secret)
        if spec is None:
            raise KeyError(f"no secret {secret!r} is bound")
        spec = self.specs[secret] = replace(spec, consumers=spec.consumers | set(consumers))
        return spec

    @classmethod
    def from_bindings(
        cls,
        bindings: Iterable[SecretBinding],
        grants: Mapping[str, Iterable[str]] | None = None,
    ) -> SecretCatalog:
        catalog = cls()
        for binding in bindings:
            catalog.add_binding(binding.metadata.name, binding.spec)
        for secret, consumers in (grants or {}).items():
            catalog.grant(secret, *consumers)
        return catalog

    def get(self, name: str) -> SecretSpec | None:
        return self.specs.get(name)

    def find_kubernetes(self, secret_name: str, key: str) -> SecretSpec | None:
        """The logical secret bound to key ``key`` of Kubernetes Secret ``secret_name``."""
        ref = SecretRef(f"{secret_name}/{key}")
        for spec in self.specs.values():
            if spec.provider == SecretProviderName.KUBERNETES.value and spec.ref == ref:
                return spec
        return None

    def providers(self) -> set[str]:
        return {s.provider for s in self.specs.values()}

    def __iter__(self) -> Iterator[SecretSpec]:
        return iter(self.specs.values())

    def __len__(self) -> int:
        return len(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self.specs
