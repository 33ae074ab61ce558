"""Prometheus metrics of the secrets layer: fixed names and labels, defined once here.

Alert rules worth having (see docs/secrets.md): any increase of
``agentfleet_secret_access_denied_total`` or ``agentfleet_secret_validation_failures_total``;
``agentfleet_secret_expiry_timestamp_seconds - time() < 3 * 86400``;
``agentfleet_secrets_ready == 0`` for 5 minutes; a rising
``agentfleet_secret_stale_served_total``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SECRET_READS = Counter(
    "agentfleet_secret_reads_total",
    "Secret reads by consumers, by outcome (fresh, stale, denied, unavailable)",
    ["secret", "consumer", "outcome"],
)
ACCESS_DENIED = Counter(
    "agentfleet_secret_access_denied_total",
    "Reads of secrets refused because the consumer is not bound to them",
    ["secret", "consumer"],
)
PROVIDER_ERRORS = Counter(
    "agentfleet_secret_provider_errors_total",
    "Failed reads from secret providers, by error class",
    ["provider", "secret", "error"],
)
STALE_SERVED = Counter(
    "agentfleet_secret_stale_served_total",
    "Reads answered with the last good value because the provider failed",
    ["secret"],
)
SECRET_AGE = Gauge(
    "agentfleet_secret_age_seconds",
    "Seconds since the served value was last confirmed by its provider",
    ["secret"],
)
VALIDATION_FAILURES = Counter(
    "agentfleet_secret_validation_failures_total",
    "New secret values rejected by their validator (the old value is kept)",
    ["secret"],
)
ROTATIONS = Counter(
    "agentfleet_secret_rotations_total",
    "New values of a secret taken into use (rotation, renewal, rollback)",
    ["secret", "reason"],
)
EXPIRY_TIMESTAMP = Gauge(
    "agentfleet_secret_expiry_timestamp_seconds",
    "When the served value of a secret expires (Unix time), where the provider says",
    ["secret"],
)
EXPIRY_ALERTS = Counter(
    "agentfleet_secret_expiry_alerts_total",
    "Secrets found close to (or past) expiry without a successful renewal",
    ["secret"],
)
RENEWALS = Counter(
    "agentfleet_secret_renewals_total",
    "Renewal attempts of expiring secrets, by outcome",
    ["secret", "outcome"],
)
SECRETS_READY = Gauge(
    "agentfleet_secrets_ready",
    "1 when every required secret has resolved to a valid value, else 0",
)
