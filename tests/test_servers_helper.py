import httpx2
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agentfleet_runtime.testing.servers import running_server


async def _hello(_: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def test_running_server_serves_over_real_http() -> None:
    app = Starlette(routes=[Route("/", _hello)])
    async with running_server(app) as server, httpx2.AsyncClient() as client:
        response = await client.get(server.url + "/")
    assert response.text == "hello"
