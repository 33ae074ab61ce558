"""The bundled demo MCP server: a handful of small, safe, genuinely useful tools.

``agentfleet dev`` mounts it at ``/mcp/demo`` inside its own app; it also runs on its own::

    python -m agentfleet_runtime.tools.mcp.demo_server --transport stdio
    python -m agentfleet_runtime.tools.mcp.demo_server --transport streamable-http --port 8765

Tools: ``calculate`` (arithmetic parsed with :mod:`ast`, never ``eval``), ``current_time``,
``convert_units``, ``text_stats``, ``remember`` / ``recall`` (a note store that lives as long
as the server process). Expected failures raise :class:`ToolError`, which MCP reports as an
``is_error`` result the model can read and correct.

The pure functions (:func:`evaluate_expression`, :func:`convert`, :func:`time_in`,
:func:`text_statistics`, :class:`NoteStore`) hold the logic; the MCP layer only wires them.

Over streamable HTTP the server is stateless and answers with plain JSON (no SSE, no
session): one POST per call, nothing kept between requests, so it scales across replicas.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, NamedTuple, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import Field
from starlette.applications import Starlette

__all__ = [
    "LOCAL_HOSTS",
    "CalculationError",
    "DemoServerApp",
    "NoteStore",
    "build_demo_server",
    "convert",
    "demo_server_asgi",
    "evaluate_expression",
    "main",
    "run_demo_server",
    "text_statistics",
    "time_in",
]

#: Host headers accepted by default when the server listens on loopback (DNS-rebinding
#: protection: a web page cannot reach it through a hostile DNS name).
LOCAL_HOSTS: Final = ("127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]")

Number = int | float

# --------------------------------------------------------------------------- calculate

MAX_EXPRESSION_LENGTH: Final = 1000
#: Largest integer result (in bits) the calculator will build: ~1,233 decimal digits.
MAX_INTEGER_BITS: Final = 4096
#: 500! has about 1,135 digits, just under the integer limit.
MAX_FACTORIAL: Final = 500


class CalculationError(ValueError):
    """The expression is not one the calculator accepts (the message says why)."""


def _factorial(n: Number) -> int:
    if isinstance(n, float):
        if not n.is_integer():
            raise CalculationError("factorial() needs a whole number")
        n = int(n)
    if n < 0:
        raise CalculationError("factorial() is not defined for negative numbers")
    if n > MAX_FACTORIAL:
        raise CalculationError(f"factorial() is limited to n <= {MAX_FACTORIAL}")
    return math.factorial(n)


def _log(x: Number, base: Number | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


def _round(x: Number, digits: int = 0) -> Number:
    if not isinstance(digits, int):
        raise CalculationError("round() takes a whole number of digits")
    return round(x, digits) if digits else round(x)


_FUNCTIONS: Final[dict[str, Callable[..., Number]]] = {
    "sqrt": math.sqrt,
    "cbrt": math.cbrt,
    "exp": math.exp,
    "log": _log,
    "ln": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "hypot": math.hypot,
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "trunc": math.trunc,
    "factorial": _factorial,
    "min": min,
    "max": max,
}
_CONSTANTS: Final[dict[str, float]] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_BINARY: Final[dict[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: Final[dict[type[ast.unaryop], Callable[[Any], Any]]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_SYNTAX_NAMES: Final[dict[type[ast.AST], str]] = {
    ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators",
    ast.Attribute: "attribute access",
    ast.Subscript: "indexing",
    ast.Lambda: "lambdas",
    ast.IfExp: "conditional expressions",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.JoinedStr: "strings",
}


def _check_power(base: Number, exponent: Number) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        bits = exponent * math.log2(abs(base))
        if bits > MAX_INTEGER_BITS:
            digits = int(bits * math.log10(2)) + 1
            raise CalculationError(
                f"exponent too large: {base}**{exponent} would have about {digits} digits "
                f"(the limit is {MAX_INTEGER_BITS} bits, about 1233 digits)"
            )


def _checked(value: Any) -> Number:
    if isinstance(value, complex):
        raise CalculationError("the result is not a real number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculationError(f"unexpected result type {type(value).__name__}")
    if isinstance(value, int) and value.bit_length() > MAX_INTEGER_BITS:
        raise CalculationError(f"the result is too large (over {MAX_INTEGER_BITS} bits)")
    if isinstance(value, float) and math.isinf(value):
        raise CalculationError("the result is too large (overflow)")
    if isinstance(value, float) and math.isnan(value):
        raise CalculationError("the result is not a number")
    return value


def _eval(node: ast.AST) -> Number:
    match node:
        case ast.Expression(body=body):
            return _eval(body)
        case ast.Constant(value=value):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise CalculationError(f"only numbers are allowed, not {value!r}")
            return _checked(value)
        case ast.Name(id=name):
            if name in _CONSTANTS:
                return _CONSTANTS[name]
            known = ", ".join(sorted(_CONSTANTS))
            raise CalculationError(f"unknown name {name!r} (known constants: {known})")
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            return _checked(_UNARY[type(op)](_eval(operand)))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _eval(left), _eval(right)
            if isinstance(op, ast.Pow):
                _check_power(a, b)
            return _checked(_BINARY[type(op)](a, b))
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in _FUNCTIONS:
            if any(isinstance(arg, ast.Starred) for arg in args):
                raise CalculationError("argument unpacking is not allowed")
            values = [_eval(arg) for arg in args]
            try:
                return _checked(_FUNCTIONS[name](*values))
            except TypeError as exc:
                raise CalculationError(f"{name}(): {exc}") from exc
        case ast.Call(func=ast.Name(id=name)):
            if name not in _FUNCTIONS:
                known = ", ".join(sorted(_FUNCTIONS))
                raise CalculationError(f"unknown function {name!r} (known functions: {known})")
            raise CalculationError(f"{name}() takes positional arguments only")
        case ast.Call():
            raise CalculationError("only the known functions can be called, e.g. sqrt(2)")
        case _:
            if isinstance(node, ast.BinOp | ast.UnaryOp):
                what = type(node.op).__name__
                raise CalculationError(f"operator {what} is not supported (use + - * / // % **)")
            what = _SYNTAX_NAMES.get(type(node), type(node).__name__)
            raise CalculationError(f"unsupported syntax ({what}): only arithmetic is allowed")


def _tidy(value: Number) -> Number:
    """Drop binary-float noise (``0.1 + 0.2`` → ``0.3``) without losing small magnitudes."""
    if isinstance(value, float):
        return float(f"{value:.15g}")
    return value


def evaluate_expression(expression: str) -> Number:
    """Evaluate an arithmetic expression safely (parsed with :mod:`ast`, never ``eval``).

    Supports ``+ - * / // % **``, parentheses, unary minus, the constants ``pi e tau`` and the
    functions in ``_FUNCTIONS``; ``^`` is accepted as a power operator. Raises
    :class:`CalculationError` for anything else, division by zero, a math domain error, or a
    result that would be too large.
    """
    text = expression.strip().replace("^", "**").replace("\u00d7", "*").replace("\u00f7", "/")
    if not text:
        raise CalculationError("the expression is empty")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise CalculationError(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"not a valid expression: {exc.msg}") from exc
    try:
        return _tidy(_eval(tree))
    except ZeroDivisionError as exc:
        raise CalculationError("division by zero") from exc
    except OverflowError as exc:
        raise CalculationError("the result is too large (overflow)") from exc
    except RecursionError as exc:
        raise CalculationError("the expression is nested too deeply") from exc
    except ValueError as exc:  # math domain errors; CalculationError is re-raised as is
        if isinstance(exc, CalculationError):
            raise
        raise CalculationError(f"math error: {exc}") from exc


# --------------------------------------------------------------------------- current_time


class TimeResult(TypedDict):
    timezone: str
    iso: str
    date: str
    time: str
    weekday: str
    utc_offset: str
    unix: int


def time_in(timezone: str = "UTC", now: datetime | None = None) -> TimeResult:
    """The time ``now`` (default: the current time) in an IANA time zone."""
    name = timezone.strip() or "UTC"
    if name.upper() in ("UTC", "Z", "GMT"):
        name = "UTC"
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {timezone!r}; use an IANA name such as 'UTC', 'Europe/Paris', "
            "'America/New_York' or 'Asia/Tokyo'"
        ) from exc
    moment = (now or datetime.now(UTC)).astimezone(zone).replace(microsecond=0)
    offset = moment.strftime("%z")
    return TimeResult(
        timezone=name,
        iso=moment.isoformat(),
        date=moment.date().isoformat(),
        time=moment.strftime("%H:%M:%S"),
        weekday=moment.strftime("%A"),
        utc_offset=f"{offset[:3]}:{offset[3:]}",
        unix=int(moment.timestamp()),
    )


# --------------------------------------------------------------------------- convert_units


@dataclass(frozen=True, slots=True)
class _Unit:
    symbol: str
    dimension: str
    factor: float  # size in the dimension's base unit (m, kg, byte); unused for temperature


def _units() -> tuple[dict[str, _Unit], dict[str, _Unit]]:
    """(case-sensitive symbols, case-insensitive names)."""
    exact: dict[str, _Unit] = {}
    loose: dict[str, _Unit] = {}

    def add(
        symbol: str, dimension: str, factor: float, *aliases: str, exact_only: bool = False
    ) -> None:
        unit = _Unit(symbol, dimension, factor)
        exact[symbol] = unit
        if not exact_only:
            loose[symbol.lower()] = unit
        for alias in aliases:
            loose[alias.lower()] = unit

    # length (metre)
    add("m", "length", 1.0, "meter", "meters", "metre", "metres")
    add("km", "length", 1e3, "kilometer", "kilometers", "kilometre", "kilometres")
    add("cm", "length", 1e-2, "centimeter", "centimeters", "centimetre", "centimetres")
    add("mm", "length", 1e-3, "millimeter", "millimeters", "millimetre", "millimetres")
    add("um", "length", 1e-6, "µm", "micrometer", "micrometers", "micron", "microns")
    add("nm", "length", 1e-9, "nanometer", "nanometers", "nanometre", "nanometres")
    add("mi", "length", 1609.344, "mile", "miles")
    add("yd", "length", 0.9144, "yard", "yards")
    add("ft", "length", 0.3048, "foot", "feet", "'")
    add("in", "length", 0.0254, "inch", "inches", '"')
    add("nmi", "length", 1852.0, "nautical mile", "nautical miles")
    # mass (kilogram)
    add("kg", "mass", 1.0, "kilogram", "kilograms", "kilo", "kilos")
    add("g", "mass", 1e-3, "gram", "grams")
    add("mg", "mass", 1e-6, "milligram", "milligrams")
    add("ug", "mass", 1e-9, "µg", "microgram", "micrograms")
    add("t", "mass", 1e3, "tonne", "tonnes", "metric ton", "metric tons")
    add("lb", "mass", 0.45359237, "lbs", "pound", "pounds")
    add("oz", "mass", 0.028349523125, "ounce", "ounces")
    add("st", "mass", 6.35029318, "stone", "stones")
    # temperature (converted through kelvin)
    add("C", "temperature", 1.0, "°C", "celsius", "degc", "degrees celsius")
    add("F", "temperature", 1.0, "°F", "fahrenheit", "degf", "degrees fahrenheit")
    add("K", "temperature", 1.0, "kelvin", "kelvins")
    # data size (byte); "b" is a bit and "B" a byte, "Mb" megabits and "MB" megabytes
    add("bit", "data", 0.125, "bits")
    add("b", "data", 0.125, exact_only=True)
    add("B", "data", 1.0, "byte", "bytes")
    for power, (decimal, binary, word, binary_word) in enumerate(
        [
            ("kB", "KiB", "kilobyte", "kibibyte"),
            ("MB", "MiB", "megabyte", "mebibyte"),
            ("GB", "GiB", "gigabyte", "gibibyte"),
            ("TB", "TiB", "terabyte", "tebibyte"),
            ("PB", "PiB", "petabyte", "pebibyte"),
        ],
        start=1,
    ):
        add(decimal, "data", 1000.0**power, word, word + "s")
        add(binary, "data", 1024.0**power, binary_word, binary_word + "s")
        prefix, bit_word = decimal[0].upper(), word.removesuffix("byte") + "bit"
        bits = f"{prefix}b"  # Kb, Mb, ...: bits, distinct from kB, MB, ... (bytes)
        bit_aliases = (prefix + "bit", bit_word, bit_word + "s")
        add(bits, "data", 1000.0**power / 8, *bit_aliases, exact_only=True)
    exact["KB"] = exact["kB"]
    return exact, loose


_EXACT_UNITS, _LOOSE_UNITS = _units()
_ZERO_CELSIUS_K: Final = 273.15


def _unit(name: str) -> _Unit:
    key = name.strip()
    unit = _EXACT_UNITS.get(key) or _LOOSE_UNITS.get(key.lower())
    if unit is None:
        raise ValueError(f"unknown unit {name!r}; supported units:\n{_supported_units()}")
    return unit


def _supported_units() -> str:
    by_dimension: dict[str, list[str]] = {}
    for unit in {id(u): u for u in _EXACT_UNITS.values()}.values():
        by_dimension.setdefault(unit.dimension, []).append(unit.symbol)
    return "\n".join(f"- {dim}: {', '.join(symbols)}" for dim, symbols in by_dimension.items())


def _to_kelvin(value: float, symbol: str) -> float:
    if symbol == "C":
        return value + _ZERO_CELSIUS_K
    if symbol == "F":
        return (value - 32.0) * 5.0 / 9.0 + _ZERO_CELSIUS_K
    return value


def _from_kelvin(kelvin: float, symbol: str) -> float:
    if symbol == "C":
        return kelvin - _ZERO_CELSIUS_K
    if symbol == "F":
        return (kelvin - _ZERO_CELSIUS_K) * 9.0 / 5.0 + 32.0
    return kelvin


class ConversionResult(TypedDict):
    value: float
    from_unit: str
    to_unit: str
    result: float
    dimension: str


def convert(value: float, from_unit: str, to_unit: str) -> ConversionResult:
    """Convert ``value`` between units of length, mass, temperature or data size."""
    if not math.isfinite(value):
        raise ValueError("the value must be a finite number")
    source, target = _unit(from_unit), _unit(to_unit)
    if source.dimension != target.dimension:
        raise ValueError(
            f"cannot convert {source.dimension} ({source.symbol}) to "
            f"{target.dimension} ({target.symbol})"
        )
    if source.dimension == "temperature":
        kelvin = _to_kelvin(value, source.symbol)
        if kelvin < -1e-9:
            raise ValueError(f"{value} {source.symbol} is below absolute zero")
        result = _from_kelvin(kelvin, target.symbol)
    else:
        result = value * source.factor / target.factor
    return ConversionResult(
        value=value,
        from_unit=source.symbol,
        to_unit=target.symbol,
        result=float(f"{result:.12g}"),
        dimension=source.dimension,
    )


# --------------------------------------------------------------------------- text_stats

#: Average silent reading speed of adults (words per minute), Brysbaert 2019.
READING_WORDS_PER_MINUTE: Final = 238
_WORD = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?…]+(?=\s|$)")


class TextStats(TypedDict):
    words: int
    characters: int
    characters_without_spaces: int
    sentences: int
    paragraphs: int
    lines: int
    average_word_length: float
    reading_time_seconds: int
    reading_time: str


def text_statistics(text: str) -> TextStats:
    """Word, character, sentence and paragraph counts, plus an estimated reading time."""
    words = _WORD.findall(text)
    chunks = [chunk for chunk in _SENTENCE_END.split(text) if _WORD.search(chunk)]
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    seconds = round(len(words) * 60 / READING_WORDS_PER_MINUTE)
    if seconds < 60:
        reading = "under a minute" if words else "nothing to read"
    else:
        minutes = round(seconds / 60)
        reading = f"about {minutes} minute{'s' if minutes != 1 else ''}"
    return TextStats(
        words=len(words),
        characters=len(text),
        characters_without_spaces=sum(1 for ch in text if not ch.isspace()),
        sentences=len(chunks),
        paragraphs=len(paragraphs),
        lines=len(text.splitlines()),
        average_word_length=round(sum(map(len, words)) / len(words), 2) if words else 0.0,
        reading_time_seconds=seconds,
        reading_time=reading,
    )


# --------------------------------------------------------------------------- remember / recall


class RememberResult(TypedDict):
    key: str
    replaced: bool
    notes: int


class RecallResult(TypedDict):
    key: str
    value: str


@dataclass(slots=True)
class NoteStore:
    """Short notes kept for the life of one server process (bounded in count and size)."""

    max_notes: int = 1000
    max_key_length: int = 200
    max_value_length: int = 10_000
    _notes: dict[str, str] = field(default_factory=dict)

    def _key(self, key: str) -> str:
        cleaned = key.strip()
        if not cleaned:
            raise ValueError("the key must not be empty")
        if len(cleaned) > self.max_key_length:
            raise ValueError(f"the key is longer than {self.max_key_length} characters")
        return cleaned

    def remember(self, key: str, value: str) -> RememberResult:
        name = self._key(key)
        if len(value) > self.max_value_length:
            raise ValueError(f"the value is longer than {self.max_value_length} characters")
        replaced = name in self._notes
        if not replaced and len(self._notes) >= self.max_notes:
            raise ValueError(f"the note store is full ({self.max_notes} notes)")
        self._notes[name] = value
        return RememberResult(key=name, replaced=replaced, notes=len(self._notes))

    def recall(self, key: str) -> RecallResult:
        name = self._key(key)
        if name not in self._notes:
            keys = sorted(self._notes)
            known = ", ".join(repr(k) for k in keys[:20]) + (" ..." if len(keys) > 20 else "")
            hint = f"known keys: {known}" if keys else "nothing has been remembered yet"
            raise ValueError(f"nothing is remembered under {name!r} ({hint})")
        return RecallResult(key=name, value=self._notes[name])


# --------------------------------------------------------------------------- the MCP server

_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)


def build_demo_server(
    *, name: str = "agentfleet-demo", notes: NoteStore | None = None
) -> MCPServer:
    """A new demo server. Each instance has its own note store (``notes``, if given)."""
    server = MCPServer(
        name,
        title="agentfleet demo tools",
        instructions=(
            "Small, safe utility tools: exact arithmetic, the current time in any time zone, "
            "unit conversion, text statistics and a scratch note store."
        ),
        version="1.0.0",
        log_level="WARNING",
    )
    store = notes if notes is not None else NoteStore()

    @server.tool(annotations=_READ_ONLY)
    async def calculate(
        expression: Annotated[
            str,
            Field(
                description="An arithmetic expression, e.g. '(3 + 4) * 2 ** 10 / 7' or "
                "'sqrt(2) * sin(pi / 4)'."
            ),
        ],
    ) -> float | int:
        """Evaluate an arithmetic expression exactly and safely. Use it instead of doing
        arithmetic in your head. Supports + - * / // % ** (or ^), parentheses, unary minus,
        the constants pi, e, tau and the functions sqrt, cbrt, exp, log(x[, base]), ln, log10,
        log2, sin, cos, tan, asin, acos, atan, atan2, sinh, cosh, tanh, degrees, radians,
        hypot, abs, round(x[, digits]), floor, ceil, trunc, factorial, min, max. Angles are
        in radians. Integers are exact (up to about 1,200 digits)."""
        try:
            return evaluate_expression(expression)
        except CalculationError as exc:
            raise ToolError(f"cannot evaluate {expression!r}: {exc}") from exc

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False))
    async def current_time(
        timezone: Annotated[
            str,
            Field(description="An IANA time zone name such as 'Europe/Paris' or 'UTC'."),
        ] = "UTC",
    ) -> TimeResult:
        """The current date and time in a time zone: ISO 8601 timestamp, date, time,
        weekday, UTC offset and Unix time. Use it whenever the answer depends on today's date
        or the time of day."""
        try:
            return time_in(timezone)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool(annotations=_READ_ONLY)
    async def convert_units(
        value: Annotated[float, Field(description="The quantity to convert.")],
        from_unit: Annotated[
            str, Field(description="Unit of the value, e.g. 'km', 'lb', 'F', 'GiB'.")
        ],
        to_unit: Annotated[str, Field(description="Unit to convert to, of the same kind.")],
    ) -> ConversionResult:
        """Convert a quantity between units of length (m, km, cm, mm, um, nm, mi, yd, ft,
        in, nmi), mass (kg, g, mg, ug, t, lb, oz, st), temperature (C, F, K) or data size
        (bit, B, kB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB, Kb, Mb, Gb, Tb, Pb). Unit
        names such as 'miles' or 'celsius' work too."""
        try:
            return convert(value, from_unit, to_unit)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool(annotations=_READ_ONLY)
    async def text_stats(
        text: Annotated[str, Field(description="The text to analyse.")],
    ) -> TextStats:
        """Count the words, characters, sentences, paragraphs and lines of a text and
        estimate how long it takes to read (at 238 words per minute). Use it for exact
        counts rather than estimating them."""
        return text_statistics(text)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
    async def remember(
        key: Annotated[str, Field(description="A short name for the note, e.g. 'user_city'.")],
        value: Annotated[str, Field(description="What to remember (up to 10,000 characters).")],
    ) -> RememberResult:
        """Store a short note under a key so it can be recalled later with `recall`. Storing
        under an existing key replaces the note. Notes last as long as the tool server runs
        and are shared by everyone who uses it: do not store secrets."""
        try:
            return store.remember(key, value)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool(annotations=_READ_ONLY)
    async def recall(
        key: Annotated[str, Field(description="The key the note was stored under.")],
    ) -> RecallResult:
        """Recall a note stored earlier with `remember`. An unknown key is an error that
        lists the keys that do exist."""
        try:
            return store.recall(key)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc

    return server


def _security(allowed_hosts: Sequence[str] | None) -> TransportSecuritySettings:
    if allowed_hosts is None:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    bare = sorted({host.removesuffix(":*") for host in allowed_hosts})
    origins = [f"{scheme}://{host}" for host in bare for scheme in ("http", "https")]
    origins += [f"{origin}:*" for origin in origins]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(allowed_hosts),
        allowed_origins=origins,
    )


class DemoServerApp(NamedTuple):
    """The demo server as an ASGI app to mount in a host app, and its lifespan.

    A mounted app's own lifespan does not run, so the host must enter ``lifespan()`` in its
    own lifespan, once (the session manager cannot be restarted: build a new
    :class:`DemoServerApp` per host app). Unpacks as ``app, lifespan``.
    """

    app: Starlette
    lifespan: Callable[[], contextlib.AbstractAsyncContextManager[None]]


def demo_server_asgi(
    *,
    path: str = "/",
    allowed_hosts: Sequence[str] | None = LOCAL_HOSTS,
    server: MCPServer | None = None,
) -> DemoServerApp:
    """A stateless, JSON-answering streamable-HTTP app for the demo server.

    ``path`` is where the MCP endpoint sits inside the app (``"/"`` to mount it at a prefix:
    clients then use ``<prefix>/``, with the trailing slash; without it Starlette answers
    with a redirect that the MCP client follows at the cost of a round trip).
    ``allowed_hosts`` are the ``Host`` header values accepted (``"host:*"`` allows any port;
    DNS-rebinding protection); ``None`` turns the check off, e.g. behind a Kubernetes Service
    whose names vary, or when the host app validates ``Host`` itself.
    """
    mcp_server = server or build_demo_server()
    app = mcp_server.streamable_http_app(
        streamable_http_path=path,
        stateless_http=True,
        json_response=True,
        transport_security=_security(allowed_hosts),
    )
    return DemoServerApp(app=app, lifespan=mcp_server.session_manager.run)


def run_demo_server(
    transport: Literal["stdio", "streamable-http"] = "stdio",
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    path: str = "/mcp",
    allowed_hosts: Sequence[str] | None = None,
) -> None:
    """Serve the demo server until interrupted (blocking).

    Over streamable HTTP the endpoint is ``http://<host>:<port><path>``; ``allowed_hosts``
    defaults to the loopback names when ``host`` is a loopback address and to no check
    otherwise.
    """
    server = build_demo_server()
    if transport == "stdio":
        server.run("stdio")
        return
    import uvicorn

    hosts = allowed_hosts
    if hosts is None and host in ("127.0.0.1", "localhost", "::1"):
        hosts = LOCAL_HOSTS
    # Served on its own, the app's lifespan runs the session manager.
    demo = demo_server_asgi(path=path, allowed_hosts=hosts, server=server)
    uvicorn.run(demo.app, host=host, port=port, log_level="warning", access_log=False)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m agentfleet_runtime.tools.mcp.demo_server",
        description="Run agentfleet's demo MCP server.",
    )
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--path", default="/mcp", help="HTTP path of the MCP endpoint")
    parser.add_argument(
        "--allowed-host",
        action="append",
        dest="allowed_hosts",
        help="Host header to accept (repeatable; 'name:*' allows any port)",
    )
    args = parser.parse_args(argv)
    run_demo_server(
        args.transport,
        host=args.host,
        port=args.port,
        path=args.path,
        allowed_hosts=args.allowed_hosts,
    )


if __name__ == "__main__":
    main()
