"""Keeping secret values out of logs, traces, error bodies and reprs.

Three layers, from most to least precise:

1. **Known values.** Every value the :class:`~agentfleet_runtime.secrets.manager.SecretManager`
   loads is registered with a :class:`Redactor`, which replaces it (and its JSON-escaped
   form) wherever it appears in text with ``[REDACTED]``.
2. **Known shapes.** Tokens with a recognisable shape (``sk-...``, ``sk-ant-...``, AWS
   access key ids, Vault ``hvs.`` tokens, GitHub tokens, PEM private keys, bearer tokens)
   are masked even if nobody registered them.
3. **Sensitive field names.** In mappings (structlog event dicts, span attributes), string
   values under keys such as ``password``, ``api_key``, ``token``, ``authorization`` are
   masked whatever they hold; pydantic ``SecretStr`` renders as ``**********``.

Where it applies: :func:`install_log_redaction` wraps the formatter of every handler on the
root logger, so the *final rendered line* (JSON or console, tracebacks included) is
redacted — whatever produced it; :func:`redact_processor` is the same as a structlog
processor for custom chains; :func:`redact_attributes` is for span attributes and error
bodies. Values are held as ``SecretStr`` everywhere in this package, so ``repr`` of config
and value objects shows ``**********``.

The logging pipeline is process-wide, so there is one process-wide :data:`REDACTOR`
(a module-level instance, deliberately); tests may build their own.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

MASK = "[REDACTED]"
#: Values shorter than this are not registered (they would mask ordinary words).
MIN_LENGTH = 6

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
        MASK,
    ),
    (re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{8,}"), MASK),
    (re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{16,}"), MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bhv[sbr]\.[A-Za-z0-9_\-]{20,}"), MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), MASK),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"), MASK),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{12,}"), r"\1 " + MASK),
)

_SENSITIVE_KEY = re.compile(
    r"(?i)^(?:.*[-_.])?(?:password|passwd|pwd|passphrase|api[-_]?key|apikey|secret[-_]?key"
    r"|secret[-_]?value|client[-_]?secret|access[-_]?key|private[-_]?key|token"
    r"|access[-_]?token|refresh[-_]?token|id[-_]?token|auth[-_]?token|session[-_]?token"
    r"|authorization|cookie|set-cookie|x-api-key|x-vault-token|credentials?)$"
)


class Redactor:
    """Replaces registered secret values and token-shaped strings in text."""

    def __init__(self, *, shapes: bool = True) -> None:
        self._values: dict[str, set[str]] = {}
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self._shapes = shapes

    def register(self, value: str | SecretStr, *, owner: str = "") -> None:
        """Redact ``value`` from now on (``owner``, e.g. the secret's name, lets
        :meth:`forget` drop it again)."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        forms = {raw, raw.strip()}
        forms |= {json.dumps(f)[1:-1] for f in list(forms)}
        forms = {f for f in forms if len(f) >= MIN_LENGTH}
        if not forms:
            return
        with self._lock:
            known = self._values.setdefault(owner, set())
            if forms <= known:
                return
            known |= forms
            self._rebuild()

    def forget(self, owner: str) -> None:
        with self._lock:
            if self._values.pop(owner, None) is not None:
                self._rebuild()

    def _rebuild(self) -> None:
        values = sorted({v for vs in self._values.values() for v in vs}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def __len__(self) -> int:
        return sum(len(v) for v in self._values.values())

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if self._shapes:
            for shape, replacement in _SHAPES:
                text = shape.sub(replacement, text)
        return text

    def redact_value(self, value: Any, *, key: str | None = None) -> Any:
        """``value`` with secrets masked: strings redacted (masked entirely under a
        sensitive key), mappings and sequences walked, ``SecretStr`` shown masked."""
        if isinstance(value, SecretStr):
            return str(value)
        if isinstance(value, str):
            if key is not None and _SENSITIVE_KEY.match(key) and value:
                return MASK
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self.redact_value(v, key=str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.redact_value(v, key=key) for v in value)
        if isinstance(value, bytes | bytearray):
            return MASK if key is not None and _SENSITIVE_KEY.match(key) else value
        return value

    def __repr__(self) -> str:
        return f"<Redactor {len(self)} values>"


#: The process-wide redactor the secret manager registers values with.
REDACTOR = Redactor()


def is_sensitive_key(key: str) -> bool:
    """Whether a field name conventionally holds a credential."""
    return bool(_SENSITIVE_KEY.match(key))


def redact(text: str, redactor: Redactor | None = None) -> str:
    return (redactor or REDACTOR).redact(text)


def redact_attributes(
    attributes: Mapping[str, Any], redactor: Redactor | None = None
) -> dict[str, Any]:
    """Span attributes / problem-detail extensions / any mapping, safe to export."""
    result: dict[str, Any] = (redactor or REDACTOR).redact_value(dict(attributes))
    return result


def redact_processor(_logger: object, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: put it right before the renderer."""
    result: dict[str, Any] = REDACTOR.redact_value(event_dict)
    return result


class RedactingFormatter(logging.Formatter):
    """Wraps another formatter and redacts its output (message, extras, tracebacks)."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.redactor = redactor or REDACTOR

    def format(self, record: logging.LogRecord) -> str:
        text = self.redactor.redact(self.inner.format(record))
        # Scrub the record too: handlers after this one, and logging's own error report
        # (``Handler.handleError`` prints the message and its arguments), see it as well.
        if isinstance(record.msg, str):
            record.msg = self.redactor.redact(record.getMessage())
            record.args = None
        elif isinstance(record.msg, Mapping):
            record.msg = self.redactor.redact_value(record.msg)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        return text


def install_log_redaction(
    redactor: Redactor | None = None, logger: logging.Logger | None = None
) -> int:
    """Wrap the formatter of every handler of ``logger`` (root by default) so rendered log
    lines are redacted. Idempotent; call it again after ``configure_logging`` replaces the
    handlers. Answers how many handlers were wrapped now."""
    target = logger or logging.getLogger()
    wrapped = 0
    for handler in target.handlers:
        formatter = handler.formatter or logging.Formatter()
        if isinstance(formatter, RedactingFormatter):
            continue
        handler.setFormatter(RedactingFormatter(formatter, redactor))
        wrapped += 1
    return wrapped
