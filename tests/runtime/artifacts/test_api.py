"""Artifacts end to end over real HTTP: the runtime (two tenants) with its artifact store
on moto's S3, the fake model provider through the OpenAI SDK, the demo MCP server.

* a large tool result is stored in S3 and referenced; the model gets a preview and a note;
* with the tenant's quota exhausted, or the store down, the turn still answers and the
  model gets the truncated text with a note saying why;
* attachments (raw and multipart uploads, size limit, text given to the model, binary
  described), transcript export, download/HEAD/DELETE, tenant isolation.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from agentfleet_crds.contract import ResolvedMCPServer
from agentfleet_crds.v1alpha1 import MCPTransport
from agentfleet_runtime.app import create_app
from agentfleet_runtime.artifacts.settings import ArtifactSettings
from agentfleet_runtime.auth.settings import AuthSettings, StaticToken
from agentfleet_runtime.config import RuntimeSettings
from agentfleet_runtime.errors import PROBLEM_BASE
from agentfleet_runtime.testing.fake_provider import RunningFakeProvider
from agentfleet_runtime.testing.proxy import TcpProxy
from agentfleet_runtime.testing.servers import running_server

from .conftest import MotoS3

TOKEN_A = "token-of-tenant-default"
TOKEN_B = "token-of-tenant-other"
BIG = "1" + "0" * 1000  # what calculate("10**1000") returns: 1001 bytes
AGENT = {
    "name": "calc",
    "spec": {
        "systemPrompt": "You are a calculator.",
        "model": {"provider": "fake", "name": "fake-model"},
        "tools": [{"mcpServerRef": {"name": "demo"}}],
    },
}


@dataclass
class Runtime:
    client: httpx2.AsyncClient
    fake: RunningFakeProvider
    s3: MotoS3
    a: dict[str, str]
    b: dict[str, str]

    async def session(self) -> str:
        response = await self.client.post("/api/v1/agents", json=AGENT, headers=self.a)
        assert response.status_code == 201, response.text
        response = await self.client.post(
            "/api/v1/sessions", json={"agent": "calc"}, headers=self.a
        )
        assert response.status_code == 201, response.text
        session_id: str = response.json()["id"]
        return session_id

    async def big_turn(self, session: str) -> dict[str, Any]:
        self.fake.script.push_tool_call("calculate", {"expression": "10**1000"})
        response = await self.client.post(
            f"/api/v1/sessions/{session}/messages", json={"content": "10^1000?"}, headers=self.a
        )
        assert response.status_code == 200, response.text
        turn: dict[str, Any] = response.json()
        return turn

    def tool_message_seen_by_model(self) -> str:
        sent = self.fake.script.last_request.messages
        content: str = [m for m in sent if m["role"] == "tool"][-1]["content"]
        return content


@pytest.fixture
def make_runtime(fake_provider: RunningFakeProvider, demo_mcp_url: str, s3: MotoS3) -> Any:
    @contextlib.asynccontextmanager
    async def make(s3_url: str | None = None, **artifacts: Any) -> AsyncIterator[Runtime]:
        settings = RuntimeSettings(
            fake_provider_url=fake_provider.url,
            log_format="console",
            auth=AuthSettings(
                mode="static",
                tokens=[
                    StaticToken(token=TOKEN_A, subject="a"),
                    StaticToken(token=TOKEN_B, subject="b", tenant="other"),
                ],
            ),
            artifacts=ArtifactSettings(
                backend="s3", s3=s3.settings(url=s3_url), inline_limit_bytes=256, **artifacts
            ),
        )
        demo = ResolvedMCPServer(
            name="demo", transport=MCPTransport.STREAMABLE_HTTP, url=demo_mcp_url
        )
        app = create_app(settings, mcp_servers={"demo": demo})
        async with (
            running_server(app) as server,
            httpx2.AsyncClient(base_url=server.url, timeout=30) as client,
        ):
            yield Runtime(
                client,
                fake_provider,
                s3,
                {"Authorization": f"Bearer {TOKEN_A}"},
                {"Authorization": f"Bearer {TOKEN_B}"},
            )

    return make


async def test_a_large_tool_result_is_stored_in_s3_and_referenced(make_runtime: Any) -> None:
    async with make_runtime() as rt:
        session = await rt.session()
        turn = await rt.big_turn(session)

        seen = rt.tool_message_seen_by_model()
        assert seen.startswith(BIG[:256] + "\n\n[Truncated: this tool result is 1001 bytes")
        assert BIG not in seen
        [call] = turn["tool_calls"]
        assert call["result"] == seen
        # The reference travels with the tool message and the tool.result event.
        history = (
            await rt.client.get(f"/api/v1/sessions/{session}/messages", headers=rt.a)
        ).json()["items"]
        ref = next(m for m in history if m["role"] == "tool")["artifact"]
        assert ref["kind"] == "tool-result"
        assert ref["size"] == 1001
        assert ref["content_type"] == "text/plain; charset=utf-8"
        assert ref["session_id"] == session
        assert ref["url"] == f"/api/v1/artifacts/{ref['id']}"
        assert ref["id"] in seen
        assert ref["url"] in seen
        events = (await rt.client.get(f"/api/v1/sessions/{session}/events", headers=rt.a)).json()
        result = next(e for e in events["items"] if e["type"] == "tool.result")
        assert result["data"]["artifact"]["id"] == ref["id"]
        # Stored whole in the bucket, under the tenant's prefix.
        assert rt.s3.objects() == {f"agentfleet/artifacts/default/{ref['id']}": 1001}
        download = await rt.client.get(ref["url"], headers=rt.a)
        assert download.status_code == 200
        assert download.text == BIG
        # Another tenant: not found, not forbidden (nothing says it exists).
        other = await rt.client.get(ref["url"], headers=rt.b)
        assert other.status_code == 404
        assert BIG not in other.text


async def test_quota_exhausted_the_turn_still_answers_with_truncated_text(
    make_runtime: Any,
) -> None:
    async with make_runtime(max_bytes_per_tenant=600) as rt:
        session = await rt.session()
        turn = await rt.big_turn(session)

        seen = rt.tool_message_seen_by_model()
        assert seen.startswith(BIG[:256] + "\n\n[Truncated: this tool result is 1001 bytes")
        assert "could not be stored (artifact-quota-exceeded" in seen
        assert "600-byte artifact quota" in seen
        assert turn["answer"]["content"]  # the model answered from the preview
        assert rt.s3.objects() == {}
        history = (
            await rt.client.get(f"/api/v1/sessions/{session}/messages", headers=rt.a)
        ).json()["items"]
        assert "artifact" not in next(m for m in history if m["role"] == "tool")

        # The same quota refuses an upload, with a clear problem.
        upload = await rt.client.post(
            f"/api/v1/sessions/{session}/attachments",
            content=b"x" * 700,
            headers={**rt.a, "Content-Type": "text/plain"},
        )
        assert upload.status_code == 507
        problem = upload.json()
        assert problem["type"] == PROBLEM_BASE + "artifact-quota-exceeded"
        assert problem["quota"] == 600


async def test_store_down_the_turn_still_answers_and_uploads_get_503(
    make_runtime: Any, s3: MotoS3
) -> None:
    host, port = s3.url.removeprefix("http://").split(":")
    async with TcpProxy(host, int(port)) as proxy, make_runtime(s3_url=proxy.url) as rt:
        session = await rt.session()
        proxy.blackhole(refuse_new=True)
        await rt.big_turn(session)

        seen = rt.tool_message_seen_by_model()
        assert seen.startswith(BIG[:256])
        assert "could not be stored (artifact-store-unavailable" in seen
        assert "after 2 attempts" in seen  # development: two attempts

        upload = await rt.client.post(
            f"/api/v1/sessions/{session}/attachments",
            content=b"hello",
            headers={**rt.a, "Content-Type": "text/plain"},
        )
        assert upload.status_code == 503
        assert upload.json()["type"] == PROBLEM_BASE + "artifact-store-unavailable"
        assert int(upload.headers["Retry-After"]) >= 1


async def test_attachments_reach_the_model(make_runtime: Any) -> None:
    async with make_runtime(max_upload_bytes=4096) as rt:
        session = await rt.session()
        notes = await rt.client.post(
            f"/api/v1/sessions/{session}/attachments?name=notes.txt",
            content=b"The launch code is 1234.",
            headers={**rt.a, "Content-Type": "text/plain; charset=utf-8"},
        )
        assert notes.status_code == 201, notes.text
        note = notes.json()
        assert note["kind"] == "attachment"
        assert note["name"] == "notes.txt"
        assert note["session_id"] == session
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
        logo = await rt.client.post(
            f"/api/v1/sessions/{session}/attachments",
            files={"file": ("logo.png", png, "image/png")},
            headers=rt.a,
        )
        assert logo.status_code == 201, logo.text
        image = logo.json()
        assert (image["name"], image["content_type"], image["size"]) == (
            "logo.png",
            "image/png",
            len(png),
        )
        too_big = await rt.client.post(
            f"/api/v1/sessions/{session}/attachments",
            content=b"x" * 4097,
            headers={**rt.a, "Content-Type": "application/octet-stream"},
        )
        assert too_big.status_code == 413
        assert too_big.json()["type"] == PROBLEM_BASE + "artifact-too-large"

        rt.fake.script.push_text("Noted.")
        answer = await rt.client.post(
            f"/api/v1/sessions/{session}/messages",
            json={"content": "Read these.", "attachments": [note["id"], image["id"]]},
            headers=rt.a,
        )
        assert answer.status_code == 200, answer.text
        sent = rt.fake.script.last_request.messages
        user = [m["content"] for m in sent if m["role"] == "user"][-1]
        assert user.startswith("Read these.\n\n")
        assert (
            f"[Attachment notes.txt (text/plain; charset=utf-8, 24 bytes, artifact {note['id']})]"
        ) in user
        assert "The launch code is 1234." in user
        assert (
            f"[Attachment logo.png (image/png, {len(png)} bytes, artifact {image['id']}): "
            "binary content, not shown.]"
        ) in user

        unknown = await rt.client.post(
            f"/api/v1/sessions/{session}/messages",
            json={"content": "and this?", "attachments": ["art_0_" + "0" * 32]},
            headers=rt.a,
        )
        assert unknown.status_code == 422
        streamed = await rt.client.post(
            f"/api/v1/sessions/{session}/messages/stream",
            json={"content": "and this?", "attachments": ["art_0_" + "0" * 32]},
            headers=rt.a,
        )
        assert streamed.status_code == 422  # answered before the stream starts

        # Tenant isolation: the other tenant can neither read, use nor add to them.
        other = await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=rt.b)
        if other.status_code == 404:  # tenant "other" has no agent "calc": give it one
            created = await rt.client.post("/api/v1/agents", json=AGENT, headers=rt.b)
            assert created.status_code == 201, created.text
            other = await rt.client.post("/api/v1/sessions", json={"agent": "calc"}, headers=rt.b)
        theirs = other.json()["id"]
        stolen = await rt.client.post(
            f"/api/v1/sessions/{theirs}/messages",
            json={"content": "read it", "attachments": [note["id"]]},
            headers=rt.b,
        )
        assert stolen.status_code == 422
        assert "1234" not in stolen.text
        assert (await rt.client.get(note["url"], headers=rt.b)).status_code == 404
        assert (await rt.client.head(note["url"], headers=rt.b)).status_code == 404
        assert (await rt.client.delete(note["url"], headers=rt.b)).status_code == 404
        upload = await rt.client.post(
            f"/api/v1/sessions/{session}/attachments",
            content=b"intrusion",
            headers={**rt.b, "Content-Type": "text/plain"},
        )
        assert upload.status_code == 404
        assert (await rt.client.get(note["url"], headers=rt.a)).status_code == 200

        # A file name is kept without directories, and downloads under its UTF-8 name.
        named = await rt.client.post(
            f"/api/v1/sessions/{session}/attachments",
            params={"name": "../../résumé.txt"},
            content=b"cv",
            headers={**rt.a, "Content-Type": "text/plain"},
        )
        assert named.json()["name"] == "résumé.txt"
        download = await rt.client.get(named.json()["url"], headers=rt.a)
        assert download.headers["content-disposition"] == (
            "attachment; filename=\"r?sum?.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
        )
        assert download.headers["content-security-policy"] == "sandbox"


async def test_export_download_head_delete(make_runtime: Any) -> None:
    async with make_runtime() as rt:
        session = await rt.session()
        rt.fake.script.push_tool_call("calculate", {"expression": "6*7"})
        turn = await rt.client.post(
            f"/api/v1/sessions/{session}/messages", json={"content": "6*7?"}, headers=rt.a
        )
        assert turn.status_code == 200

        export = await rt.client.post(f"/api/v1/sessions/{session}/export", headers=rt.a)
        assert export.status_code == 201, export.text
        ref = export.json()
        assert ref["kind"] == "transcript"
        assert ref["content_type"] == "application/json"
        assert ref["name"] == f"{session}.json"

        download = await rt.client.get(ref["url"], headers=rt.a)
        assert download.status_code == 200
        assert download.headers["content-type"] == "application/json"
        assert download.headers["content-disposition"] == f'attachment; filename="{session}.json"'
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["etag"] == f'"{ref["sha256"]}"'
        document = json.loads(download.content)
        assert document["format"] == "agentfleet.transcript/v1"
        assert document["session"]["id"] == session
        assert [m["role"] for m in document["messages"]] == [
            "user",
            "assistant",
            "tool",
            "assistant",
        ]
        assert document["messages"][2]["content"] == "42"
        assert {e["type"] for e in document["events"]} >= {"turn.started", "turn.completed"}

        head = await rt.client.head(ref["url"], headers=rt.a)
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) == ref["size"] == len(download.content)
        assert head.headers["x-artifact-kind"] == "transcript"
        assert head.headers["x-artifact-expires"] == ref["expires_at"].replace("Z", "+00:00")

        assert (
            await rt.client.post(f"/api/v1/sessions/{session}/export", headers=rt.b)
        ).status_code == 404
        assert (await rt.client.delete(ref["url"], headers=rt.b)).status_code == 404
        assert (await rt.client.delete(ref["url"], headers=rt.a)).status_code == 204
        assert (await rt.client.get(ref["url"], headers=rt.a)).status_code == 404
        assert rt.s3.objects() == {}
