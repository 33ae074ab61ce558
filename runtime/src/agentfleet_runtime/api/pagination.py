"""Cursor pagination, sorting and the list envelope shared by every list endpoint.

A list endpoint takes the same query parameters everywhere — ``limit`` (1 to 500, default
50), ``cursor`` (opaque, from the previous page's ``next_cursor``) and ``sort`` (a field,
``-field`` for descending) — plus its own filters, and answers a :class:`Page`:
``items`` (as before: the change is additive), ``total`` (how many match the filters),
``next_cursor`` and ``links`` (``self``, ``next``), with the next page also in an RFC 8288
``Link: <…>; rel="next"`` header.

Keyset pagination: a cursor holds the sort key and id of the last item of its page, so
items created or deleted between two requests neither repeat nor shift the pages that
follow (an offset would). Stores return a tenant's bounded list; filtering, sorting and
cutting happen here, in Python (see :func:`paginate`).

A cursor is base64url JSON ``{"v", "s" (sort), "q" (filters), "k" (key), "i" (id)}`` with
a checksum: a cursor that was cut, edited or belongs to another query (another sort or
other filters) is refused with 422 ``invalid-cursor``. It is not a secret (it only names
a position in the caller's own list), so the checksum is not keyed.

Usage in a route::

    @router.get("")
    async def list_things(request: Request, response: Response, page: PageQuery,
                          colour: str | None = None) -> Page[Thing]:
        things = [t for t in await store.list() if colour is None or t.colour == colour]
        return paginate(things, page, THING_SORTS, request=request, response=response)

with ``THING_SORTS = Sorts({"created_at": lambda t: t.created_at, "name": ...},
default="created_at", id_of=lambda t: t.id)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field

from agentfleet_runtime.errors import InvalidRequestError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: Query parameters that never change which items a list has (not bound into a cursor).
PAGING_PARAMS = frozenset({"limit", "cursor"})
_CURSOR_VERSION = 1

SortValue = str | int | float | datetime


class InvalidCursorError(InvalidRequestError):
    """The ``cursor`` was not issued by this API for this query (cut, edited, or from a
    list with another sort or other filters)."""

    slug = "invalid-cursor"
    title = "Invalid cursor"


class InvalidSortError(InvalidRequestError):
    """``sort`` names a field the list cannot be sorted by (``allowed`` lists them)."""

    slug = "invalid-sort"
    title = "Invalid sort"


class PageLinks(BaseModel):
    self: str = Field(description="This page (path and query)")
    next: str | None = Field(default=None, description="The next page; absent on the last")


class Page[T](BaseModel):
    """One page of a list."""

    items: list[T]
    total: int = Field(description="How many items match the filters (on every page)")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last"
    )
    links: PageLinks

    def map[U](self, convert: Callable[[T], U]) -> Page[U]:
        """The same page with each item converted (a stored record → its public form)."""
        return Page[U](
            items=[convert(i) for i in self.items],
            total=self.total,
            next_cursor=self.next_cursor,
            links=self.links,
        )


@dataclass(frozen=True)
class PageParams:
    #: ``None``: every item (lists that were never paged keep answering in full).
    limit: int | None
    cursor: str | None
    sort: str | None


def page_query(
    default: int | None = DEFAULT_LIMIT, maximum: int = MAX_LIMIT
) -> Callable[..., Awaitable[PageParams]]:
    """The dependency reading ``limit``/``cursor``/``sort``: ``default`` items per page
    (``None``: all unless ``limit`` is given), at most ``maximum``. (Its signature is
    built here because its bounds are arguments: FastAPI reads parameters from it.)"""

    async def dependency(limit: int | None, cursor: str | None, sort: str | None) -> PageParams:
        return PageParams(limit=limit, cursor=cursor, sort=sort)

    limit_param = Query(ge=1, le=maximum, description=f"Items per page (max {maximum})")
    cursor_param = Query(max_length=2048, description="`next_cursor` of the previous page (opaque)")
    sort_param = Query(max_length=64, description="Sort field, `-field` for descending")
    keyword = inspect.Parameter.KEYWORD_ONLY
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "limit", keyword, default=default, annotation=Annotated[int | None, limit_param]
            ),
            inspect.Parameter(
                "cursor", keyword, default=None, annotation=Annotated[str | None, cursor_param]
            ),
            inspect.Parameter(
                "sort", keyword, default=None, annotation=Annotated[str | None, sort_param]
            ),
        ],
        return_annotation=PageParams,
    )
    return dependency


#: The ``limit`` (default 50, max 500), ``cursor`` and ``sort`` parameters of a list.
PageQuery = Annotated[PageParams, Depends(page_query())]


@dataclass(frozen=True)
class Sorts[T]:
    """The fields a list can be sorted by: ``keys`` maps a field to its value on an item;
    ``default`` is the sort without ``sort=`` (``-field`` for descending); ``id_of`` breaks
    ties (and makes the order total, which keyset pagination needs)."""

    keys: dict[str, Callable[[T], SortValue]]
    default: str
    id_of: Callable[[T], str]

    def resolve(self, sort: str | None) -> tuple[str, bool]:
        """``(field, descending)`` of ``sort`` (or the default); 422 for unknown fields."""
        spec = sort or self.default
        field, descending = (spec[1:], True) if spec.startswith("-") else (spec, False)
        if field not in self.keys:
            allowed = sorted(self.keys)
            raise InvalidSortError(
                f"cannot sort by {field!r}; allowed: " + ", ".join(f"{f}, -{f}" for f in allowed),
                allowed=allowed,
            )
        return field, descending


def _normal(value: SortValue) -> str | int | float:
    """A sort value as JSON that compares like the value (datetimes as fixed-width UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return value


def _checksum(payload: bytes) -> str:
    return hashlib.sha256(b"agentfleet-cursor\x00" + payload).hexdigest()[:16]


def query_fingerprint(request: Request) -> str:
    """What a cursor is bound to: the query's parameters but ``limit`` and ``cursor``."""
    params = sorted((k, v) for k, v in request.query_params.multi_items() if k not in PAGING_PARAMS)
    return hashlib.sha256(json.dumps(params).encode()).hexdigest()[:16]


def encode_cursor(sort: str, query: str, key: str | int | float, item_id: str) -> str:
    payload = json.dumps(
        {"v": _CURSOR_VERSION, "s": sort, "q": query, "k": key, "i": item_id},
        separators=(",", ":"),
    ).encode()
    token = payload + b"." + _checksum(payload).encode()
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_cursor(cursor: str, *, sort: str, query: str) -> tuple[str | int | float, str]:
    """The ``(key, id)`` a cursor points after; :class:`InvalidCursorError` unless it was
    issued for this ``sort`` and ``query``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload, _, check = raw.rpartition(b".")
        if not payload or check.decode() != _checksum(payload):
            raise ValueError("checksum")
        data: Any = json.loads(payload)
        if not isinstance(data, dict) or data.get("v") != _CURSOR_VERSION:
            raise ValueError("version")
        key, item_id = data["k"], data["i"]
        if not isinstance(key, str | int | float) or not isinstance(item_id, str):
            raise ValueError("shape")
    except (ValueError, KeyError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidCursorError("the cursor is malformed or was altered") from exc
    if data.get("s") != sort or data.get("q") != query:
        raise InvalidCursorError(
            "the cursor belongs to another query (sort and filters must stay the same "
            "from page to page; only limit may change)"
        )
    return key, item_id


def _relative(request: Request, **changes: str | None) -> str:
    """This request's path and query with ``changes`` (``None`` removes a parameter): a
    relative reference, right behind any proxy that rewrites the host."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    params += [(k, v) for k, v in changes.items() if v is not None]
    query = urlencode(params)
    return request.url.path + (f"?{query}" if query else "")


def paginate[T](
    items: Sequence[T],
    page: PageParams,
    sorts: Sorts[T],
    *,
    request: Request,
    response: Response | None = None,
) -> Page[T]:
    """Sort ``items`` (already filtered) by ``page.sort``, cut the page after
    ``page.cursor``, and build the envelope; sets the ``Link`` header on ``response``."""
    field, descending = sorts.resolve(page.sort)
    sort_spec = ("-" if descending else "") + field
    key_of = sorts.keys[field]

    def position(item: T) -> tuple[str | int | float, str]:
        return _normal(key_of(item)), sorts.id_of(item)

    ordered = sorted(items, key=position, reverse=descending)
    query = query_fingerprint(request)
    if page.cursor is not None:
        after = decode_cursor(page.cursor, sort=sort_spec, query=query)
        try:
            if descending:
                ordered = [i for i in ordered if position(i) < after]
            else:
                ordered = [i for i in ordered if position(i) > after]
        except TypeError as exc:  # a key of another type than this field's
            raise InvalidCursorError("the cursor does not fit this list") from exc
    chosen = ordered if page.limit is None else ordered[: page.limit]
    next_cursor = None
    if len(chosen) < len(ordered):
        key, item_id = position(chosen[-1])
        next_cursor = encode_cursor(sort_spec, query, key, item_id)
    links = PageLinks(
        self=_relative(request),
        next=_relative(request, cursor=next_cursor) if next_cursor else None,
    )
    if response is not None and links.next is not None:
        response.headers["Link"] = f'<{links.next}>; rel="next"'
    return Page[T](items=list(chosen), total=len(items), next_cursor=next_cursor, links=links)


def as_utc(value: datetime | None) -> datetime | None:
    """A ``created_after``-style filter's time: a time without zone is taken as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def parse_time(name: str, value: str | None) -> datetime | None:
    """A time filter given as text: ISO 8601 (422 naming ``name`` otherwise); a time
    without zone is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequestError(
            f"{name}: not an ISO 8601 date-time ({value!r})", field=f"query.{name}"
        ) from exc
    return as_utc(parsed)
