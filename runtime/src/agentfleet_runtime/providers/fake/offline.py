"""agentfleet's offline model: a deterministic stand-in for a language model, so that
``agentfleet dev`` is usable with no API key and tests get predictable answers.

Its rules, in order:

1. The conversation ends with tool results → it answers with a sentence that quotes them.
2. The user's last message names an offered tool (``calculate``; ``current_time`` also as
   "current time") → it calls that tool (the one named first). The arguments come from
   JSON written right after the name (``calculate {"expression": "2+2"}``), or else from
   the tool's input schema: no required parameter → ``{}``; a required parameter gets
   the rest of the message after the tool's name, without filler words and punctuation
   (``calculate 2+2 for me?`` → ``{"expression": "2+2"}``), converted to its type.
3. Otherwise it says that it is the offline model, echoes the message and lists the tools
   it could call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from agentfleet_runtime.messages import Message
from agentfleet_runtime.providers.base import ToolSpec
from agentfleet_runtime.providers.fake.script import FakeToolCall

_LEADING_FILLER = frozenset(
    {
        "please", "can", "you", "could", "would", "for", "me", "us", "of", "the", "what",
        "whats", "what's", "is", "are", "this", "that", "to", "with", "on", "about",
        "using", "now", "tell", "show", "give", "in", "at",
    }
)  # fmt: skip
_TRAILING_FILLER = ("for me", "for us", "please", "thanks", "thank you", "now")
_EDGE_PUNCTUATION = " \t\r\n,;:!?.'\"`-=>"
_JSON = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class OfflineAnswer:
    text: str = ""
    tool_calls: tuple[FakeToolCall, ...] = ()


def offline_answer(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> OfflineAnswer:
    """The offline model's answer to a conversation offering ``tools``."""
    if messages and messages[-1]["role"] == "tool":
        return OfflineAnswer(text=_summarise_results(messages))
    text = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    call = _tool_call_for(text, tools)
    if call is not None:
        return OfflineAnswer(tool_calls=(call,))
    return OfflineAnswer(text=_introduce(text, tools))


def _summarise_results(messages: Sequence[Message]) -> str:
    results: list[Message] = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        results.append(message)
    results.reverse()
    parts = []
    for result in results:
        name = result.get("name", "the tool")
        content = result["content"].strip() or "nothing"
        verb = "failed with" if result.get("is_error") else "returned"
        parts.append(f"{name} {verb}: {content}")
    if len(parts) == 1:
        return f"Here is the result. {parts[0]}"
    return "Here are the results. " + "; ".join(parts)


def _introduce(text: str, tools: Sequence[ToolSpec]) -> str:
    said = text.strip() or "(nothing)"
    answer = f"I am agentfleet's offline model, so I can only echo you. You said: {said}"
    if tools:
        names = ", ".join(tool.name for tool in tools)
        return f"{answer}\nTools I could call: {names}. Mention one by name to call it."
    return f"{answer}\nNo tools are available to me."


@lru_cache(maxsize=512)
def _name_pattern(name: str) -> re.Pattern[str]:
    words = [re.escape(part) for part in re.split(r"[_\-\s]+", name) if part]
    return re.compile(r"(?<![\w])" + r"[_\-\s]+".join(words) + r"(?![\w])", re.IGNORECASE)


def _tool_call_for(text: str, tools: Sequence[ToolSpec]) -> FakeToolCall | None:
    best: tuple[int, int, ToolSpec, int] | None = None  # (start, -length, tool, end)
    for tool in tools:
        match = _name_pattern(tool.name).search(text)
        if match is not None:
            key = (match.start(), -len(match.group()), tool, match.end())
            if best is None or key[:2] < best[:2]:
                best = key
    if best is None:
        return None
    tool, rest = best[2], text[best[3] :]
    return FakeToolCall(tool.name, _arguments_for(tool.input_schema, rest))


def _arguments_for(schema: dict[str, Any], rest: str) -> dict[str, Any]:
    stripped = rest.lstrip(" \t\r\n:=")
    if stripped.startswith("{"):
        try:
            value, _ = _JSON.raw_decode(stripped)
        except ValueError:
            pass
        else:
            if isinstance(value, dict):
                return value
    required = [name for name in schema.get("required") or () if isinstance(name, str)]
    properties = schema.get("properties") or {}
    phrase = _clean(rest)
    if not required:
        # A lone optional text parameter takes the phrase when there is one
        # ("current time in Europe/Paris" → timezone="Europe/Paris").
        texts = [n for n, p in properties.items() if _is_free_text(p)]
        meaningful = phrase.lower() not in _LEADING_FILLER | set(_TRAILING_FILLER)
        if phrase and meaningful and len(properties) == 1 and texts:
            return {texts[0]: phrase}
        return {}
    arguments: dict[str, Any] = {}
    # The phrase goes to the first required free-text parameter (else the first required
    # one); the others get their default.
    target = next((n for n in required if _is_free_text(properties.get(n))), required[0])
    for name in required:
        prop = properties.get(name)
        prop = prop if isinstance(prop, dict) else {}
        arguments[name] = _coerce(phrase, prop) if name == target else _default(prop)
    return arguments


def _clean(rest: str) -> str:
    phrase = rest.strip(_EDGE_PUNCTUATION)
    changed = True
    while changed and phrase:
        changed = False
        head, _, tail = phrase.partition(" ")
        if head.lower().strip(_EDGE_PUNCTUATION) in _LEADING_FILLER and tail:
            phrase, changed = tail.strip(_EDGE_PUNCTUATION), True
        lowered = phrase.lower()
        for filler in _TRAILING_FILLER:
            if lowered.endswith(" " + filler):
                phrase, changed = phrase[: -len(filler) - 1].strip(_EDGE_PUNCTUATION), True
                break
    return phrase


def _is_free_text(prop: Any) -> bool:
    return _type_of(prop) == "string" and not (isinstance(prop, dict) and prop.get("enum"))


def _type_of(prop: Any) -> str:
    if not isinstance(prop, dict):
        return "string"
    kind = prop.get("type", "string")
    if isinstance(kind, list):  # e.g. ["string", "null"]
        kind = next((k for k in kind if k != "null"), "string")
    return kind if isinstance(kind, str) else "string"


def _coerce(phrase: str, prop: dict[str, Any]) -> Any:
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:
        return next((v for v in enum if str(v).lower() == phrase.lower()), enum[0])
    kind = _type_of(prop)
    if kind == "integer":
        match = re.search(r"-?\d+", phrase)
        return int(match.group()) if match else 0
    if kind == "number":
        match = re.search(r"-?\d+(?:\.\d+)?", phrase)
        return float(match.group()) if match else 0.0
    if kind == "boolean":
        return phrase.lower() in ("true", "yes", "on", "1", "y")
    if kind == "array":
        return [phrase] if phrase else []
    if kind == "object":
        return {}
    return phrase


def _default(prop: dict[str, Any]) -> Any:
    if "default" in prop:
        return prop["default"]
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    return {"integer": 0, "number": 0.0, "boolean": False, "array": [], "object": {}}.get(
        _type_of(prop), ""
    )
