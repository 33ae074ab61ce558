"""API versioning: the ``/api/v1`` path version and deprecation announcements.

Compatibility policy (docs/api.md, "Versioning"): within ``v1`` changes are additive only
(new operations, new optional request fields, new response fields, new problem ``type``s);
anything that will go is first marked deprecated, keeps working until its sunset date,
and says so on every successful response:

* ``Deprecation: @<unix seconds>`` — since when (RFC 9745, a structured-field Date);
* ``Sunset: <HTTP-date>`` — when it stops working (RFC 8594);
* ``Link: <url>; rel="deprecation"`` — where the replacement is described.

The OpenAPI document marks such an operation ``deprecated: true`` and documents the
headers. Use :func:`deprecated` for a route, :func:`announce_deprecation` as a
dependency where a whole router or a credential is deprecated::

    @router.get("/old", **deprecated(since=date(2026, 11, 1), sunset=date(2027, 5, 1),
                                     link="https://agentfleet.dev/docs/api#versioning",
                                     summary="The old way"))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time
from email.utils import format_datetime
from typing import Any

from fastapi import Depends, Response

API_VERSION = "v1"
API_PREFIX = f"/api/{API_VERSION}"


def _instant(when: date | datetime) -> datetime:
    """A date means its start (00:00 UTC); a naive datetime is UTC."""
    if not isinstance(when, datetime):
        return datetime.combine(when, time(), tzinfo=UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def deprecation_headers(
    *, since: date | datetime, sunset: date | datetime | None = None, link: str | None = None
) -> dict[str, str]:
    """The response headers announcing a deprecation."""
    headers = {"Deprecation": f"@{int(_instant(since).timestamp())}"}
    if sunset is not None:
        headers["Sunset"] = format_datetime(_instant(sunset).astimezone(UTC), usegmt=True)
    if link is not None:
        headers["Link"] = f'<{link}>; rel="deprecation"'
    return headers


def announce_deprecation(
    *, since: date | datetime, sunset: date | datetime | None = None, link: str | None = None
) -> Callable[[Response], Awaitable[None]]:
    """A dependency adding the deprecation headers to the response (``Depends(...)`` it on a
    route or router, or call it where a deprecated credential was used)."""
    headers = deprecation_headers(since=since, sunset=sunset, link=link)

    async def announce(response: Response) -> None:
        response.headers.update(headers)

    return announce


_HEADER_DOCS = {
    "Deprecation": "When this operation was deprecated (RFC 9745: `@` + Unix seconds)",
    "Sunset": "When this operation stops working (RFC 8594, an HTTP-date)",
    "Link": 'Where the replacement is described (`rel="deprecation"`)',
}


def deprecated(
    *,
    since: date | datetime,
    sunset: date | datetime | None = None,
    link: str | None = None,
    **route: Any,
) -> dict[str, Any]:
    """Keyword arguments for ``@router.<method>(path, **deprecated(...))``: the route's own
    (``route``: ``summary``, ``status_code``, ``responses``, ``dependencies``... — pass
    them here, not beside, so that they are merged) plus ``deprecated=True``,
    the dependency that sends the headers, their OpenAPI documentation on the success
    response, and a sentence on the sunset in the description."""
    headers = deprecation_headers(since=since, sunset=sunset, link=link)
    success = str(route.get("status_code", 200))
    documented = {
        name: {"description": _HEADER_DOCS[name], "schema": {"type": "string"}} for name in headers
    }
    extra: dict[str, Any] = dict(route.pop("openapi_extra", None) or {})
    extra.setdefault("responses", {}).setdefault(success, {}).setdefault("headers", {}).update(
        documented
    )
    notice = f"**Deprecated** since {_instant(since).date().isoformat()}"
    if sunset is not None:
        notice += f"; it stops working on {_instant(sunset).date().isoformat()} (`Sunset`)"
    if link is not None:
        notice += f". See {link}"
    description = route.pop("description", None)
    return {
        **route,
        "deprecated": True,
        "description": f"{notice}.\n\n{description}" if description else f"{notice}.",
        "dependencies": [
            *route.get("dependencies", []),
            Depends(announce_deprecation(since=since, sunset=sunset, link=link)),
        ],
        "openapi_extra": extra,
    }
