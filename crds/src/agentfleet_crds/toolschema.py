"""The fingerprint of an MCP tool's input schema, shared by the operator (which writes it
into ``MCPServer.status.toolSchemas``), the runtime (which checks an Agent's
``spec.tools[].pinnedTools`` against what a server lists, and shows it in
``GET /api/v1/mcp-servers/{name}/tools``) and anyone pinning a tool by hand.

The hash is exact: it is ``sha256:`` followed by the hex SHA-256 of the schema's canonical
JSON (keys sorted at every level, no insignificant whitespace, UTF-8, non-ASCII kept as
is — the key order and spacing of RFC 8785, with Python's number formatting, which agrees
with it for the integers and short decimals JSON Schemas hold). Any change to the schema
changes the hash, an added optional property or a reworded description included: a pin
says "exactly this schema", not "a compatible one". To pin, copy the current hash from the
API or the MCPServer's status::

    python -c 'import json,sys; from agentfleet_crds.toolschema import input_schema_hash;
    print(input_schema_hash(json.load(sys.stdin)))' < schema.json
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["SCHEMA_HASH_PATTERN", "SCHEMA_HASH_PREFIX", "canonical_json", "input_schema_hash"]

SCHEMA_HASH_PREFIX: Final = "sha256:"
#: What a pinned hash looks like (the CRD validates pins against it).
SCHEMA_HASH_PATTERN: Final = r"^sha256:[0-9a-f]{64}$"


def canonical_json(value: Mapping[str, Any]) -> str:
    """``value`` as canonical JSON: sorted keys, no spaces, non-ASCII unescaped."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def input_schema_hash(schema: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a tool's ``inputSchema`` as canonical JSON (see the module doc)."""
    digest = hashlib.sha256(canonical_json(schema).encode("utf-8")).hexdigest()
    return SCHEMA_HASH_PREFIX + digest
