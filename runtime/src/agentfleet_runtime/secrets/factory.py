"""Building secret providers and the manager from settings and SecretBindings."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from agentfleet_crds.v1alpha1.secretbinding import SecretBinding, SecretProviderName
from agentfleet_runtime.audit import AuditLog
from agentfleet_runtime.secrets.base import SecretProvider, SecretRef
from agentfleet_runtime.secrets.catalog import ResolvedSecretLike, SecretCatalog, SecretSpec
from agentfleet_runtime.secrets.manager import SecretManager
from agentfleet_runtime.secrets.providers.env import EnvSecretProvider
from agentfleet_runtime.secrets.providers.files import FileSecretProvider
from agentfleet_runtime.secrets.providers.memory import MemorySecretProvider
from agentfleet_runtime.secrets.settings import SecretsSettings
from agentfleet_runtime.secrets.validation import Validator

log = logging.getLogger(__name__)

#: Provider kinds beyond the SecretBinding ones: ``env`` (development) and ``memory``.
ENV = "env"
MEMORY = "memory"


def create_secret_provider(
    kind: str, settings: SecretsSettings, *, secrets_dir: Path
) -> SecretProvider:
    """The provider for ``kind`` (a ``SecretProviderName`` value, ``env`` or ``memory``).
    Cloud SDKs are imported here, lazily: a missing extra raises
    ``SecretProviderNotInstalledError`` naming the extra to install."""
    if kind == SecretProviderName.KUBERNETES.value:
        return FileSecretProvider(
            secrets_dir, watch=settings.watch_files, force_polling=settings.force_polling
        )
    if kind == ENV:
        return EnvSecretProvider(env_file=settings.env_file)
    if kind == MEMORY:
        return MemorySecretProvider()
    if kind == SecretProviderName.AWS.value:
        from agentfleet_runtime.secrets.providers.aws import AwsSecretsManagerProvider

        aws = settings.aws
        return AwsSecretsManagerProvider(
            region=aws.region,
            endpoint_url=aws.endpoint_url,
            profile=aws.profile,
            read_timeout=aws.timeout_seconds,
        )
    if kind == SecretProviderName.AZURE.value:
        from agentfleet_runtime.secrets.providers.azure import AzureKeyVaultProvider

        azure = settings.azure
        if not azure.vault_url:
            raise ValueError("secret provider azure needs AGENTFLEET_SECRETS__AZURE__VAULT_URL")
        return AzureKeyVaultProvider(
            azure.vault_url,
            connection_verify=str(azure.ca_file) if azure.ca_file else True,
            timeout=azure.timeout_seconds,
        )
    if kind == SecretProviderName.GCP.value:
        from agentfleet_runtime.secrets.providers.gcp import GcpSecretManagerProvider

        gcp = settings.gcp
        return GcpSecretManagerProvider(
            gcp.project,
            endpoint=gcp.endpoint,
            transport=gcp.transport,
            timeout=gcp.timeout_seconds,
        )
    if kind == SecretProviderName.VAULT.value:
        from agentfleet_runtime.secrets.providers.vault import VaultSecretProvider

        vault = settings.vault
        if not vault.url:
            raise ValueError("secret provider vault needs AGENTFLEET_SECRETS__VAULT__URL")
        return VaultSecretProvider(
            vault.url,
            token=vault.token,
            token_file=vault.token_file,
            kubernetes_role=vault.kubernetes_role,
            kubernetes_mount=vault.kubernetes_mount,
            mount_point=vault.mount_point,
            kv_version=vault.kv_version,
            namespace=vault.namespace,
            verify=str(vault.ca_file) if vault.ca_file else vault.tls_verify,
            timeout=vault.timeout_seconds,
        )
    raise ValueError(f"unknown secret provider {kind!r}")


def override_variable(name: str) -> str:
    """The development override variable of a logical secret."""
    return "AGENTFLEET_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def apply_dev_overrides(
    catalog: SecretCatalog, env: EnvSecretProvider, *, development: bool
) -> list[str]:
    """Point bound secrets that have an ``AGENTFLEET_SECRET_<NAME>`` variable at the env
    provider (development only; elsewhere the variables are ignored with a warning)."""
    overridden = []
    for spec in list(catalog):
        variable = override_variable(spec.name)
        if env.lookup(variable) is None:
            continue
        if not development:
            log.warning(
                "secret override variable ignored outside development",
                extra={"event_type": "secret.override_ignored", "secret": spec.name},
            )
            continue
        catalog.specs[spec.name] = replace(spec, provider=ENV, ref=SecretRef(variable))
        overridden.append(spec.name)
        log.info(
            "secret overridden from the environment (development)",
            extra={"event_type": "secret.dev_override", "secret": spec.name},
        )
    return overridden


def build_secret_catalog(
    settings: SecretsSettings,
    *,
    secrets_dir: Path,
    development: bool,
    bindings: Iterable[SecretBinding] = (),
    resolved: Mapping[str, Iterable[ResolvedSecretLike]] | None = None,
    specs: Sequence[SecretSpec] = (),
) -> SecretCatalog:
    """The secrets of ``bindings``, of ``resolved`` (agent name → the ``ResolvedSecret`` s
    the operator rendered into its runtime config) and ``specs``, with the grants of the
    settings (and the development overrides)."""
    catalog = SecretCatalog.from_bindings(bindings)
    for agent, secrets in (resolved or {}).items():
        catalog.add_resolved(agent, secrets, secrets_dir=secrets_dir)
    for spec in specs:
        catalog.add(spec)
    for secret, consumers in settings.grants.items():
        if secret in catalog:
            catalog.grant(secret, *consumers)
    if settings.dev_overrides:
        env = EnvSecretProvider(environ=os.environ, env_file=settings.env_file)
        apply_dev_overrides(catalog, env, development=development)
    return catalog


def missing_providers(
    catalog: SecretCatalog, settings: SecretsSettings, *, secrets_dir: Path, have: Iterable[str]
) -> dict[str, SecretProvider]:
    """The providers ``catalog`` uses that are not among ``have``, created."""
    return {
        kind: create_secret_provider(kind, settings, secrets_dir=secrets_dir)
        for kind in sorted(catalog.providers() - set(have))
    }


def build_secret_manager(
    settings: SecretsSettings,
    *,
    secrets_dir: Path,
    development: bool,
    bindings: Iterable[SecretBinding] = (),
    resolved: Mapping[str, Iterable[ResolvedSecretLike]] | None = None,
    specs: Sequence[SecretSpec] = (),
    validators: Mapping[str, Sequence[Validator]] | None = None,
    providers: Mapping[str, SecretProvider] | None = None,
    audit: AuditLog | None = None,
) -> SecretManager:
    """A manager for the secrets of :func:`build_secret_catalog`, creating only the
    providers those secrets use (``providers`` overrides)."""
    catalog = build_secret_catalog(
        settings,
        secrets_dir=secrets_dir,
        development=development,
        bindings=bindings,
        resolved=resolved,
        specs=specs,
    )
    made = dict(providers or {})
    made.update(missing_providers(catalog, settings, secrets_dir=secrets_dir, have=made))
    return SecretManager(
        catalog,
        made,
        options=settings.manager_options(),
        validators=validators,
        audit=audit,
    )
