"""Validators for secret values: callables that raise ``ValueError`` with a reason (which
must never quote the value) when a value is not usable. The manager runs them on every new
value; a failure keeps the previous value and raises an alert-worthy event."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable

Validator = Callable[[str], object]


def non_empty(value: str) -> None:
    if not value.strip():
        raise ValueError("the value is empty")


def min_length(n: int) -> Validator:
    def check(value: str) -> None:
        if len(value) < n:
            raise ValueError(f"the value is shorter than {n} characters")

    return check


def matches(pattern: str, description: str) -> Validator:
    """The whole value must match ``pattern``; ``description`` says what was expected."""
    compiled = re.compile(pattern)

    def check(value: str) -> None:
        if not compiled.fullmatch(value):
            raise ValueError(f"the value is not {description}")

    return check


def json_object(required: Iterable[str] = ()) -> Validator:
    """A JSON object having the ``required`` fields."""
    fields = tuple(required)

    def check(value: str) -> None:
        try:
            data = json.loads(value)
        except ValueError:
            raise ValueError("the value is not JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the value is not a JSON object")
        missing = [f for f in fields if f not in data]
        if missing:
            raise ValueError(f"the JSON object lacks {', '.join(missing)}")

    return check


def base64_key(length: int = 32) -> Validator:
    """Base64 of exactly ``length`` bytes (an AES-256 key by default)."""

    def check(value: str) -> None:
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the value is not base64") from None
        if len(raw) != length:
            raise ValueError(f"the key is {len(raw)} bytes, not {length}")

    return check


#: What an LLM API key looks like, loosely (no whitespace, at least 20 characters).
api_key = matches(r"\S{20,}", "an API key (20+ characters, no whitespace)")
