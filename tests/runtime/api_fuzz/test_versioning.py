"""Deprecation announcements (RFC 9745 ``Deprecation``, RFC 8594 ``Sunset``, ``Link``
rel="deprecation") on a route that uses :func:`deprecated`, over real HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime

import httpx2
from fastapi import APIRouter, FastAPI, status

from agentfleet_runtime.api.problems import install_problem_handlers, problem_responses
from agentfleet_runtime.api.versioning import API_PREFIX, deprecated
from agentfleet_runtime.errors import NotFoundError
from agentfleet_runtime.testing.servers import running_server

LINK = "https://agentfleet.dev/docs/api#versioning"


def _app() -> FastAPI:
    router = APIRouter(prefix="/widgets")

    @router.get(
        "/{name}",
        **deprecated(
            since=date(2026, 11, 1),
            sunset=datetime(2027, 5, 1, 12, 0, tzinfo=UTC),
            link=LINK,
            summary="Get a widget (old)",
            description="Use `/gadgets/{name}`.",
            responses=problem_responses(404),
        ),
    )
    async def old_widget(name: str) -> dict[str, str]:
        if name == "missing":
            raise NotFoundError(f"widget {name!r} does not exist")
        return {"name": name}

    @router.post("", **deprecated(since=date(2026, 1, 1), status_code=status.HTTP_201_CREATED))
    async def old_create() -> dict[str, str]:
        return {"name": "new"}

    @router.get("/current/one", summary="Not deprecated")
    async def current() -> dict[str, str]:
        return {"name": "current"}

    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router, prefix=API_PREFIX)
    return app


async def test_deprecated_route_sends_the_headers_and_is_marked_in_openapi() -> None:
    app = _app()
    async with running_server(app) as server, httpx2.AsyncClient(base_url=server.url) as client:
        response = await client.get("/api/v1/widgets/w1")
        assert response.status_code == 200
        assert response.headers["Deprecation"] == "@1793491200"  # 2026-11-01T00:00:00Z
        sunset = parsedate_to_datetime(response.headers["Sunset"])
        assert sunset == datetime(2027, 5, 1, 12, 0, tzinfo=UTC)
        assert response.headers["Sunset"].endswith(" GMT")
        assert response.headers["Link"] == f'<{LINK}>; rel="deprecation"'

        created = await client.post("/api/v1/widgets")
        assert created.status_code == 201
        assert created.headers["Deprecation"] == "@1767225600"
        assert "Sunset" not in created.headers
        assert "Link" not in created.headers

        current = await client.get("/api/v1/widgets/current/one")
        assert "Deprecation" not in current.headers

        missing = await client.get("/api/v1/widgets/missing")  # errors stay problems
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")

        document = (await client.get("/openapi.json")).json()
    old = document["paths"]["/api/v1/widgets/{name}"]["get"]
    assert old["deprecated"] is True
    assert old["summary"] == "Get a widget (old)"
    assert old["description"].startswith("**Deprecated** since 2026-11-01; it stops working")
    assert old["description"].endswith("Use `/gadgets/{name}`.")
    assert set(old["responses"]["200"]["headers"]) == {"Deprecation", "Sunset", "Link"}
    assert "404" in old["responses"]
    create = document["paths"]["/api/v1/widgets"]["post"]
    assert create["deprecated"] is True
    assert set(create["responses"]["201"]["headers"]) == {"Deprecation"}
    assert "deprecated" not in document["paths"]["/api/v1/widgets/current/one"]["get"]
