"""Envelope encryption: AES-256-GCM data keys wrapped by KEKs from a secret provider,
context binding, tamper detection, and key rotation (new primary, old data still
readable, re-wrap, rotation delivered through the secret manager)."""

from __future__ import annotations

import base64
import json

import pytest

from agentfleet_runtime.secrets import (
    DecryptionError,
    Redactor,
    SecretCatalog,
    SecretManager,
    SecretRef,
    SecretSpec,
)
from agentfleet_runtime.secrets.crypto import (
    EnvelopeCipher,
    Keyring,
    cipher_from_manager,
    generate_key,
    new_keyset,
    rotate_keyset,
)
from agentfleet_runtime.secrets.providers.memory import MemorySecretProvider

STATE = "component:state"


def test_round_trip_and_context_binding() -> None:
    cipher = EnvelopeCipher(Keyring.parse(new_keyset("k1")))
    blob = cipher.encrypt(b"session transcript", context=b"session:42")
    assert b"session transcript" not in blob
    assert cipher.decrypt(blob, context=b"session:42") == b"session transcript"
    assert cipher.key_id(blob) == "k1"
    assert cipher.encrypt(b"same", context=b"c") != cipher.encrypt(b"same", context=b"c")
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob, context=b"session:43")  # moved to another key
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    with pytest.raises(DecryptionError):
        cipher.decrypt(bytes(tampered), context=b"session:42")
    with pytest.raises(DecryptionError, match="not an agentfleet envelope"):
        cipher.decrypt(b"plain text that was never encrypted")


def test_single_key_material_and_bad_material() -> None:
    ring = Keyring.parse(generate_key())
    assert ring.primary == "default"
    with pytest.raises(ValueError, match="not 32"):
        Keyring.parse(base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="not a usable keyset"):
        Keyring.parse('{"primary": "k9", "keys": {}}')
    assert "keys" not in repr(ring)
    assert generate_key() not in repr(ring)


def test_rotation_keeps_old_data_readable_and_rewraps() -> None:
    v1 = new_keyset("k1")
    old_cipher = EnvelopeCipher(Keyring.parse(v1))
    blob = old_cipher.encrypt(b"checkpoint", context=b"thread:1")
    v2 = rotate_keyset(v1, "k2")
    assert json.loads(v2)["primary"] == "k2"
    cipher = EnvelopeCipher(Keyring.parse(v2))
    assert cipher.decrypt(blob, context=b"thread:1") == b"checkpoint"
    assert cipher.needs_rewrap(blob)
    rewrapped = cipher.rewrap(blob, context=b"thread:1")
    assert cipher.key_id(rewrapped) == "k2"
    assert not cipher.needs_rewrap(rewrapped)
    # once k1 is retired from the keyset, only re-wrapped data is readable
    only_k2 = json.loads(v2)
    del only_k2["keys"]["k1"]
    retired = EnvelopeCipher(Keyring.parse(json.dumps(only_k2)))
    assert retired.decrypt(rewrapped, context=b"thread:1") == b"checkpoint"
    with pytest.raises(DecryptionError, match="unknown key id 'k1'"):
        retired.decrypt(blob, context=b"thread:1")


async def test_cipher_follows_key_rotation_in_the_secret_provider() -> None:
    memory = MemorySecretProvider()
    v1 = new_keyset("k1")
    memory.put("kek", v1)
    catalog = SecretCatalog()
    catalog.add(SecretSpec("state-kek", "memory", SecretRef("kek"), frozenset({STATE})))
    manager = SecretManager(catalog, {"memory": memory}, redactor=Redactor())
    cipher = await cipher_from_manager(manager, "state-kek", consumer=STATE)
    before = cipher.encrypt(b"tool result")
    memory.put("kek", rotate_keyset(v1, "k2"))
    await manager.refresh("state-kek")
    after = cipher.encrypt(b"tool result")
    assert (cipher.key_id(before), cipher.key_id(after)) == ("k1", "k2")
    assert cipher.decrypt(before) == cipher.decrypt(after) == b"tool result"
    memory.put("kek", "this is not a keyset")  # a broken rotation is rejected...
    await manager.refresh("state-kek")
    assert cipher.keyring.primary == "k2"  # ...and the last good keyring stays
    assert manager.status("state-kek").last_error == "SecretValidationError"
