"""The demo MCP server: its tools' logic (pure functions), and the tools as MCP serves them."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from mcp import Client

from agentfleet_runtime.testing.servers import running_server
from agentfleet_runtime.tools.mcp.demo_server import (
    CalculationError,
    NoteStore,
    build_demo_server,
    convert,
    demo_server_asgi,
    evaluate_expression,
    text_statistics,
    time_in,
)

from .conftest import host_app

# --------------------------------------------------------------------------- calculate


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 2", 4),
        ("(3 + 4) * 2", 14),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("2 ^ 10", 1024),
        ("-3 + +5", 2),
        ("-2 ** 2", -4),
        ("0.1 + 0.2", 0.3),
        ("sqrt(16)", 4.0),
        ("sin(pi / 2)", 1.0),
        ("log(8, 2)", 3.0),
        ("ln(e)", 1.0),
        ("log10(1000)", 3.0),
        ("factorial(10)", 3628800),
        ("max(1, 5, 3) + min(2, 4)", 7),
        ("round(2.567, 2)", 2.57),
        ("abs(-3) * tau / pi", 6.0),
        ("10 ** 1000 // 10 ** 999", 10),
        ("2 ** -2", 0.25),
    ],
)
def test_calculate_evaluates_arithmetic(expression: str, expected: float) -> None:
    result = evaluate_expression(expression)
    assert result == pytest.approx(expected)
    if isinstance(expected, int):
        assert isinstance(result, int)  # integers stay exact


def test_calculate_keeps_big_integers_exact() -> None:
    assert evaluate_expression("2 ** 200") == 2**200
    assert evaluate_expression("factorial(30)") == math.factorial(30)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("__import__('os').system('true')", "only the known functions can be called"),
        ("(lambda: 1)()", "only the known functions can be called"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("(1).__class__", "attribute access"),
        ("x + 1", "unknown name 'x'"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("[1, 2]", "lists"),
        ("1 < 2", "comparisons"),
        ("1 if 1 else 2", "conditional"),
        ("lambda: 1", "lambdas"),
        ("1 << 100", "operator LShift"),
        ("sin(x=1)", "positional arguments only"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("sqrt(-1)", "math error"),
        ("(-8) ** 0.5", "not a real number"),
        ("2 ** 100000", "exponent too large"),
        ("9 ** 9 ** 9", "exponent too large"),
        ("10.0 ** 400", "too large"),
        ("1e308 * 10", "too large"),
        ("factorial(100000)", "factorial() is limited"),
        ("factorial(-1)", "negative"),
        ("2 +", "not a valid expression"),
        ("", "empty"),
        ("1 + " * 600 + "1", "longer than"),
    ],
)
def test_calculate_refuses_what_is_not_plain_arithmetic(expression: str, message: str) -> None:
    with pytest.raises(CalculationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate_expression(expression)


# --------------------------------------------------------------------------- current_time


def test_current_time_in_a_zone() -> None:
    now = datetime(2026, 7, 14, 10, 30, 15, 123456, tzinfo=UTC)
    paris = time_in("Europe/Paris", now=now)
    assert paris == {
        "timezone": "Europe/Paris",
        "iso": "2026-07-14T12:30:15+02:00",
        "date": "2026-07-14",
        "time": "12:30:15",
        "weekday": "Tuesday",
        "utc_offset": "+02:00",
        "unix": int(now.timestamp()),
    }
    assert time_in("utc", now=now)["iso"] == "2026-07-14T10:30:15+00:00"
    assert time_in("", now=now)["timezone"] == "UTC"
    assert time_in("America/St_Johns", now=now)["utc_offset"] == "-02:30"


def test_current_time_defaults_to_now() -> None:
    before = datetime.now(UTC).timestamp()
    assert before - 1 <= time_in()["unix"] <= before + 5


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "Europe/"])
def test_current_time_rejects_unknown_zones(zone: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        time_in(zone)


# --------------------------------------------------------------------------- convert_units


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (10, "km", "mi", 6.21371192237),
        (1, "mile", "m", 1609.344),
        (12, "in", "ft", 1.0),
        (1, "nmi", "km", 1.852),
        (1, "kg", "lb", 2.20462262185),
        (16, "oz", "lb", 1.0),
        (1, "t", "kg", 1000.0),
        (100, "C", "F", 212.0),
        (32, "fahrenheit", "celsius", 0.0),
        (0, "K", "C", -273.15),
        (-40, "°C", "°F", -40.0),
        (1, "GiB", "MiB", 1024.0),
        (1, "GB", "MB", 1000.0),
        (1, "GiB", "GB", 1.073741824),
        (8, "Mb", "MB", 1.0),
        (1, "B", "bit", 8.0),
        (1, "b", "B", 0.125),
        (1, "kb", "B", 1000.0),  # lower case reads as bytes, the usual intent
        (2, "Kilometres", "METERS", 2000.0),
    ],
)
def test_convert_units(value: float, source: str, target: str, expected: float) -> None:
    assert convert(value, source, target)["result"] == pytest.approx(expected)


def test_convert_units_reports_canonical_symbols() -> None:
    assert convert(1, "kilometers", "miles") == {
        "value": 1,
        "from_unit": "km",
        "to_unit": "mi",
        "result": 0.621371192237,
        "dimension": "length",
    }


@pytest.mark.parametrize(
    ("source", "target", "value", "message"),
    [
        ("km", "kg", 1, "cannot convert length"),
        ("furlong", "m", 1, "unknown unit 'furlong'"),
        ("C", "K", -300, "below absolute zero"),
        ("m", "km", math.inf, "finite"),
    ],
)
def test_convert_units_errors(source: str, target: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        convert(value, source, target)


def test_unknown_unit_lists_the_supported_ones() -> None:
    with pytest.raises(ValueError, match=r"(?s)length: m, km.*temperature: C, F, K"):
        convert(1, "parsec", "m")


# --------------------------------------------------------------------------- text_stats


def test_text_stats() -> None:
    stats = text_statistics("Hello world. Isn't this a test? Yes!\n\nA new paragraph here.")
    assert stats["words"] == 11
    assert stats["sentences"] == 4
    assert stats["paragraphs"] == 2
    assert stats["lines"] == 3
    assert stats["characters"] == 59
    assert stats["characters_without_spaces"] == 48
    assert stats["reading_time"] == "under a minute"


def test_text_stats_reading_time_and_empty_text() -> None:
    long = text_statistics("word " * 2380)
    assert long["words"] == 2380
    assert long["reading_time_seconds"] == 600
    assert long["reading_time"] == "about 10 minutes"
    empty = text_statistics("   ")
    assert (empty["words"], empty["sentences"], empty["paragraphs"]) == (0, 0, 0)
    assert empty["reading_time"] == "nothing to read"
    assert empty["average_word_length"] == 0.0


# --------------------------------------------------------------------------- remember / recall


def test_note_store() -> None:
    notes = NoteStore(max_notes=2, max_value_length=10)
    assert notes.remember(" city ", "Paris") == {"key": "city", "replaced": False, "notes": 1}
    assert notes.recall("city") == {"key": "city", "value": "Paris"}
    assert notes.remember("city", "Lyon")["replaced"] is True
    notes.remember("dog", "Rex")
    with pytest.raises(ValueError, match="full"):
        notes.remember("cat", "Tom")
    with pytest.raises(ValueError, match="longer than 10"):
        notes.remember("city", "x" * 11)
    with pytest.raises(ValueError, match="must not be empty"):
        notes.remember("  ", "x")
    with pytest.raises(ValueError, match="known keys: 'city', 'dog'"):
        notes.recall("bird")
    with pytest.raises(ValueError, match="nothing has been remembered"):
        NoteStore().recall("anything")


# --------------------------------------------------------------------------- over MCP


async def call(client: Client, tool: str, **arguments: Any) -> tuple[bool, str, Any]:
    result = await client.call_tool(tool, arguments)
    text = "\n".join(getattr(block, "text", "") for block in result.content)
    return bool(result.is_error), text, result.structured_content


async def test_tools_are_described_for_the_model() -> None:
    async with Client(build_demo_server()) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {
        "calculate",
        "current_time",
        "convert_units",
        "text_stats",
        "remember",
        "recall",
    }
    for tool in tools.values():
        assert tool.description
        assert len(tool.description) > 60
        properties = tool.input_schema["properties"]
        assert properties
        assert all(p.get("description") for p in properties.values())
    assert tools["convert_units"].input_schema["required"] == ["value", "from_unit", "to_unit"]
    assert tools["current_time"].input_schema["properties"]["timezone"]["default"] == "UTC"
    assert tools["calculate"].annotations is not None
    assert tools["calculate"].annotations.read_only_hint is True


async def test_tools_answer_and_errors_are_tool_errors() -> None:
    async with Client(build_demo_server()) as client:
        assert await call(client, "calculate", expression="6 * 7") == (False, "42", {"result": 42})
        is_error, text, _ = await call(client, "calculate", expression="import os")
        assert is_error
        assert "not a valid expression" in text
        is_error, text, _ = await call(client, "calculate", expression="2 ** 99999")
        assert is_error
        assert "exponent too large" in text

        is_error, _, data = await call(client, "current_time", timezone="Asia/Tokyo")
        assert not is_error
        assert data["utc_offset"] == "+09:00"
        is_error, text, _ = await call(client, "current_time", timezone="Nowhere/Town")
        assert is_error
        assert "unknown time zone" in text

        is_error, _, data = await call(
            client, "convert_units", value=5, from_unit="km", to_unit="m"
        )
        assert not is_error
        assert data["result"] == 5000.0
        is_error, text, _ = await call(
            client, "convert_units", value=1, from_unit="kg", to_unit="m"
        )
        assert is_error
        assert "cannot convert mass" in text

        is_error, _, data = await call(client, "text_stats", text="One two three.")
        assert not is_error
        assert data["words"] == 3

        is_error, text, _ = await call(client, "calculate")  # missing argument
        assert is_error
        assert "expression" in text


async def test_notes_live_as_long_as_the_server() -> None:
    server = build_demo_server()
    async with Client(server) as client:
        assert (await call(client, "remember", key="colour", value="teal"))[0] is False
    async with Client(server) as client:  # a new session, the same server
        assert await call(client, "recall", key="colour") == (
            False,
            '{\n  "key": "colour",\n  "value": "teal"\n}',
            {"key": "colour", "value": "teal"},
        )
        is_error, text, _ = await call(client, "recall", key="size")
        assert is_error
        assert "known keys: 'colour'" in text
    async with Client(build_demo_server()) as client:  # another server: its own notes
        assert (await call(client, "recall", key="colour"))[0] is True


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream"}


async def test_http_app_is_stateless_json_and_checks_the_host_header() -> None:
    demo = demo_server_asgi()
    async with (
        running_server(host_app(("/mcp", demo))) as server,
        httpx2.AsyncClient(base_url=server.url) as http,
    ):
        ok = await http.post("/mcp/", json=INITIALIZE, headers=MCP_HEADERS)
        assert ok.status_code == 200
        assert ok.headers["content-type"].startswith("application/json")  # no SSE
        assert "mcp-session-id" not in ok.headers  # stateless
        assert ok.json()["result"]["serverInfo"]["name"] == "agentfleet-demo"
        hostile = await http.post(
            "/mcp/", json=INITIALIZE, headers=MCP_HEADERS | {"host": "evil.example"}
        )
        assert hostile.status_code >= 400


async def test_http_app_host_check_can_be_configured() -> None:
    open_demo = demo_server_asgi(allowed_hosts=None)
    cluster_demo = demo_server_asgi(allowed_hosts=["demo.tools.svc:*"])
    app = host_app(("/open", open_demo), ("/cluster", cluster_demo))
    async with running_server(app) as server, httpx2.AsyncClient(base_url=server.url) as http:
        anywhere = MCP_HEADERS | {"host": "evil.example"}
        assert (await http.post("/open/", json=INITIALIZE, headers=anywhere)).status_code == 200
        service = MCP_HEADERS | {"host": "demo.tools.svc:8080"}
        assert (await http.post("/cluster/", json=INITIALIZE, headers=service)).status_code == 200
        local = await http.post("/cluster/", json=INITIALIZE, headers=MCP_HEADERS)
        assert local.status_code >= 400
