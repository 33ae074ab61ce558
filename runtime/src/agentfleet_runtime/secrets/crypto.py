"""Envelope encryption for sensitive data the runtime persists outside process memory
(Redis sessions, checkpoints, cached tool results...).

Each :meth:`EnvelopeCipher.encrypt` draws a fresh 256-bit *data key* (DEK), encrypts the
data with it (AES-256-GCM, random 96-bit nonce, the caller's ``context`` as associated
data), and stores the DEK *wrapped* by a *key-encryption key* (KEK, AES-256-GCM again).
KEKs never leave the process: they come from a secret provider as a **keyset** — JSON
``{"primary": "k2", "keys": {"k1": "<base64 32 bytes>", "k2": "..."}}`` — or a single
base64 key (its id is then ``"default"``).

Rotation: add a new key to the keyset and make it primary. New data is wrapped with it;
old data still decrypts with the old key (its id is in the envelope header); :meth:`rewrap`
re-wraps an envelope's DEK under the primary KEK without touching the data, so a
background sweep can retire an old key before removing it from the keyset.
:func:`cipher_from_manager` keeps a cipher in step with the keyset secret as it rotates.

Envelope layout (bytes)::

    b"AFE1" | kid length (1) | kid (utf-8) | wrap nonce (12) | wrapped DEK (48)
           | data nonce (12) | ciphertext + tag

The header (everything before the data nonce) and ``context`` are bound into the data's
GCM tag, so swapping headers or contexts between envelopes fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agentfleet_runtime.secrets.errors import DecryptionError

if TYPE_CHECKING:
    from agentfleet_runtime.secrets.manager import SecretManager, SecretUpdate

MAGIC = b"AFE1"
KEY_BYTES = 32
NONCE_BYTES = 12
_WRAPPED_BYTES = KEY_BYTES + 16
DEFAULT_KID = "default"


@dataclass(frozen=True, slots=True)
class Keyring:
    """Key-encryption keys by id, one of them primary. ``repr`` shows ids only."""

    keys: Mapping[str, bytes] = field(repr=False)
    primary: str

    def __post_init__(self) -> None:
        if self.primary not in self.keys:
            raise ValueError(f"the primary key {self.primary!r} is not in the keyset")
        for kid, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {kid!r} is {len(key)} bytes, not {KEY_BYTES}")
            if not kid or len(kid.encode("utf-8")) > 255:
                raise ValueError("key ids must be 1-255 bytes")

    @property
    def ids(self) -> list[str]:
        return sorted(self.keys)

    @classmethod
    def parse(cls, material: str) -> Keyring:
        """A keyset JSON document or a single base64 key (errors never quote material)."""
        text = material.strip()
        if text.startswith("{"):
            try:
                doc = json.loads(text)
                keys = {str(k): _b64(v) for k, v in doc["keys"].items()}
                return cls(keys=keys, primary=str(doc["primary"]))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"not a usable keyset: {type(exc).__name__}") from None
        return cls(keys={DEFAULT_KID: _b64(text)}, primary=DEFAULT_KID)


def _b64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("keys must be base64 strings")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a key is not valid base64") from None


def generate_key() -> str:
    """A new random KEK, base64."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def new_keyset(kid: str = "k1") -> str:
    """A keyset JSON document with one fresh key."""
    return json.dumps({"primary": kid, "keys": {kid: generate_key()}})


def rotate_keyset(keyset: str, new_kid: str) -> str:
    """``keyset`` plus a fresh primary key ``new_kid`` (old keys kept for decryption)."""
    ring = Keyring.parse(keyset)
    if new_kid in ring.keys:
        raise ValueError(f"key id {new_kid!r} already exists")
    keys = {k: base64.b64encode(v).decode("ascii") for k, v in ring.keys.items()}
    keys[new_kid] = generate_key()
    return json.dumps({"primary": new_kid, "keys": keys})


def keyset_validator(value: str) -> None:
    """A validator for the manager: the value must parse as a keyring."""
    Keyring.parse(value)


class EnvelopeCipher:
    """``encrypt``/``decrypt`` with envelope encryption under a :class:`Keyring` (given,
    or returned by a callable so that rotation takes effect immediately)."""

    def __init__(self, keyring: Keyring | Callable[[], Keyring]) -> None:
        self._keyring = keyring

    def __repr__(self) -> str:
        return f"<EnvelopeCipher primary={self.keyring.primary!r}>"

    @property
    def keyring(self) -> Keyring:
        return self._keyring() if callable(self._keyring) else self._keyring

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        """Encrypt ``plaintext``; ``context`` (e.g. ``b"session:<id>"``) must be given
        again to decrypt, binding the ciphertext to where it is stored."""
        ring = self.keyring
        kid = ring.primary.encode("utf-8")
        dek = AESGCM.generate_key(bit_length=256)
        wrap_nonce = os.urandom(NONCE_BYTES)
        wrapped = AESGCM(ring.keys[ring.primary]).encrypt(wrap_nonce, dek, MAGIC + kid)
        header = MAGIC + bytes([len(kid)]) + kid + wrap_nonce + wrapped
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + AESGCM(dek).encrypt(nonce, plaintext, header + context)

    def decrypt(self, envelope: bytes, *, context: bytes = b"") -> bytes:
        header, kid, dek, rest = self._open(envelope)
        nonce, ciphertext = rest[:NONCE_BYTES], rest[NONCE_BYTES:]
        try:
            return AESGCM(dek).decrypt(nonce, ciphertext, header + context)
        except InvalidTag:
            raise DecryptionError(
                "the data does not decrypt (tampered, or a different context)", key_id=kid
            ) from None

    def key_id(self, envelope: bytes) -> str:
        """The id of the KEK that wrapped ``envelope``'s data key."""
        return _parse_header(envelope)[1]

    def needs_rewrap(self, envelope: bytes) -> bool:
        return self.key_id(envelope) != self.keyring.primary

    def rewrap(self, envelope: bytes, *, context: bytes = b"") -> bytes:
        """``envelope`` re-keyed under the primary KEK: same data key, new header (so the
        data is re-sealed with a new nonce, as GCM binds the header)."""
        header, _, dek, rest = self._open(envelope)
        nonce, ciphertext = rest[:NONCE_BYTES], rest[NONCE_BYTES:]
        try:
            plaintext = AESGCM(dek).decrypt(nonce, ciphertext, header + context)
        except InvalidTag:
            raise DecryptionError(
                "the data does not decrypt (tampered, or a different context)"
            ) from None
        ring = self.keyring
        kid = ring.primary.encode("utf-8")
        wrap_nonce = os.urandom(NONCE_BYTES)
        wrapped = AESGCM(ring.keys[ring.primary]).encrypt(wrap_nonce, dek, MAGIC + kid)
        new_header = MAGIC + bytes([len(kid)]) + kid + wrap_nonce + wrapped
        new_nonce = os.urandom(NONCE_BYTES)
        return (
            new_header + new_nonce + AESGCM(dek).encrypt(new_nonce, plaintext, new_header + context)
        )

    def _open(self, envelope: bytes) -> tuple[bytes, str, bytes, bytes]:
        header_len, kid = _parse_header(envelope)
        header = envelope[:header_len]
        key = self.keyring.keys.get(kid)
        if key is None:
            raise DecryptionError(f"unknown key id {kid!r} (retired from the keyset?)", key_id=kid)
        offset = 5 + len(kid.encode("utf-8"))
        wrap_nonce = envelope[offset : offset + NONCE_BYTES]
        wrapped = envelope[offset + NONCE_BYTES : header_len]
        try:
            dek = AESGCM(key).decrypt(wrap_nonce, wrapped, MAGIC + kid.encode("utf-8"))
        except InvalidTag:
            raise DecryptionError("the data key does not unwrap", key_id=kid) from None
        return header, kid, dek, envelope[header_len:]


def _parse_header(envelope: bytes) -> tuple[int, str]:
    if len(envelope) < 5 or envelope[:4] != MAGIC:
        raise DecryptionError("not an agentfleet envelope")
    kid_len = envelope[4]
    header_len = 5 + kid_len + NONCE_BYTES + _WRAPPED_BYTES
    if len(envelope) < header_len + NONCE_BYTES + 16:
        raise DecryptionError("truncated envelope")
    try:
        kid = envelope[5 : 5 + kid_len].decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError("corrupt envelope header") from None
    return header_len, kid


async def cipher_from_manager(
    manager: SecretManager, name: str, *, consumer: str
) -> EnvelopeCipher:
    """A cipher whose keyring is the keyset secret ``name`` and follows its rotations
    (a keyset that fails to parse is rejected by the manager; the old one stays)."""
    manager.add_validator(name, keyset_validator)
    current = [Keyring.parse((await manager.get(name, consumer=consumer)).get_secret_value())]

    def on_update(update: SecretUpdate) -> None:
        current[0] = Keyring.parse(update.value.get_secret_value())

    manager.subscribe(name, on_update, consumer=consumer)
    return EnvelopeCipher(lambda: current[0])
