"""SecretBindings → what an Agent's pods mount and what its runtime config names. Pure.

A ``kubernetes`` binding mounts each Secret key as a file at
``<SECRETS_MOUNT_DIR>/<secret>/<key>`` (a Secret volume without ``subPath``, so the kubelet
refreshes the file when the Secret is rotated: no restart). The other providers (``aws``,
``azure``, ``gcp``, ``vault``) are never read by the operator: their references are written
into the runtime config, and the runtime's secret provider reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agentfleet_crds.contract import SECRETS_MOUNT_DIR, ResolvedSecret
from agentfleet_crds.contract import secret_file as contract_secret_file
from agentfleet_crds.v1alpha1 import SecretBinding
from agentfleet_crds.v1alpha1.common import SecretKeyRef
from agentfleet_crds.v1alpha1.secretbinding import SecretProviderName


@dataclass
class BoundSecrets:
    """What the SecretBindings that name one Agent give it."""

    #: logical name → where the runtime finds it (first binding by name wins).
    secrets: dict[str, ResolvedSecret] = field(default_factory=dict)
    #: Secret name → keys to mount (provider ``kubernetes`` only).
    mounts: dict[str, set[str]] = field(default_factory=dict)
    #: ``binding/logical-name`` entries that lost to an earlier binding with the same name.
    shadowed: list[str] = field(default_factory=list)


def bound_secrets(agent_name: str, bindings: Iterable[SecretBinding]) -> BoundSecrets:
    """The secrets ``bindings`` give the Agent ``agent_name`` (bindings that do not list it
    are ignored). Deterministic: bindings are taken in name order."""
    result = BoundSecrets()
    for binding in sorted(bindings, key=lambda b: b.metadata.name):
        spec = binding.spec
        if agent_name not in spec.agents:
            continue
        for secret in spec.secrets:
            if secret.name in result.secrets:
                result.shadowed.append(f"{binding.metadata.name}/{secret.name}")
                continue
            if spec.provider is SecretProviderName.KUBERNETES:
                assert secret.kubernetes is not None  # the model guarantees it
                ref = SecretKeyRef(name=secret.kubernetes.secret_name, key=secret.kubernetes.key)
                result.mounts.setdefault(ref.name, set()).add(ref.key)
                result.secrets[secret.name] = ResolvedSecret(
                    name=secret.name,
                    provider=spec.provider,
                    binding=binding.metadata.name,
                    file=contract_secret_file(SECRETS_MOUNT_DIR, ref),
                    refresh_interval_seconds=spec.refresh_interval_seconds,
                )
            else:
                assert secret.remote is not None  # the model guarantees it
                result.secrets[secret.name] = ResolvedSecret(
                    name=secret.name,
                    provider=spec.provider,
                    binding=binding.metadata.name,
                    key=secret.remote.key,
                    property=secret.remote.property,
                    version=secret.remote.version,
                    refresh_interval_seconds=spec.refresh_interval_seconds,
                )
    return result
