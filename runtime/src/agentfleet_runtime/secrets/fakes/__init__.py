"""Small wire-compatible fakes of Azure Key Vault, GCP Secret Manager (REST) and Vault's
HTTP API, for testing the real SDKs (azure-keyvault-secrets, google-cloud-secret-manager,
hvac) over real HTTP(S) without a cloud account. They implement only what the adapters
use, plus the writes tests need to rotate secrets; ``available = False`` makes them answer
503 like an outage. First-class code: users can test their own setups with them."""

from agentfleet_runtime.secrets.fakes.serve import TlsFiles, make_tls_files, serve

__all__ = ["TlsFiles", "make_tls_files", "serve"]
