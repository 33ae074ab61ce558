"""Runs over real HTTP: each turn's record (status, steps, tool calls, tokens, model,
timing, error), filters, paging, tenancy, deletion with the session; queued runs; the
Redis backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from agentfleet_runtime.state.settings import StateSettings
from agentfleet_runtime.testing.redis import INSTALL_HINT, redis_server_path, running_redis

from .conftest import ADMIN, OTHER, Api, MakeApi


async def test_a_completed_turn_is_recorded_as_a_run(api: Api) -> None:
    assert (await api.create_agent()).status_code == 201
    sid = await api.session()
    before = datetime.now(UTC)
    answer = await api.say(sid, "calculate 2*(3+4)")
    assert answer.status_code == 200, answer.text
    turn = answer.json()

    listed = await api.get(f"/api/v1/sessions/{sid}/runs")
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["total"] == 1
    assert page["next_cursor"] is None
    run = page["items"][0]
    assert run["id"] == turn["turn_id"]
    assert (run["status"], run["agent"], run["session_id"], run["tenant"]) == (
        "completed",
        "calc",
        sid,
        "default",
    )
    assert run["steps"] == turn["steps"] == 2
    assert [(c["name"], c["arguments"], c["is_error"]) for c in run["tool_calls"]] == [
        ("calculate", {"expression": "2*(3+4)"}, False)
    ]
    assert run["usage"] == turn["usage"]
    assert run["usage"]["input_tokens"] > 0
    assert run["model"] == "fake-model"
    assert run["duration_ms"] == turn["duration_ms"]
    assert run["error"] is None
    assert run["dead_letter_id"] is None
    created, started, finished = (
        datetime.fromisoformat(run[k]) for k in ("created_at", "started_at", "finished_at")
    )
    assert before - timedelta(seconds=1) <= created <= started <= finished

    assert (await api.get(f"/api/v1/runs/{run['id']}")).json() == run
    runs = "/api/v1/runs"
    assert [r["id"] for r in (await api.get(runs, agent="calc")).json()["items"]] == [run["id"]]
    assert (await api.get(runs, status="failed")).json()["items"] == []
    assert (await api.get(runs, status="completed")).json()["total"] == 1
    assert (await api.get(runs, session_id=sid)).json()["total"] == 1
    assert (await api.get(runs, agent="other")).json()["total"] == 0
    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert (await api.get(runs, created_after=future)).json()["total"] == 0
    assert (await api.get(runs, created_before=future)).json()["total"] == 1
    assert (await api.get(runs, created_after="yesterday")).status_code == 422
    assert (await api.get(runs, status="bogus")).status_code == 422


async def test_a_failed_turn_is_a_dead_lettered_or_failed_run(api: Api) -> None:
    await api.create_agent()
    sid = await api.session()
    api.fake.script.push_error(401, message="invalid key")
    assert (await api.say(sid, "what is 6*7?")).status_code == 502
    [run] = (await api.get("/api/v1/runs", status="dead-lettered")).json()["items"]
    assert run["error"]["type"].endswith("/dependency-auth")
    assert run["error"]["detail"]
    [letter] = (await api.get("/api/v1/deadletters")).json()["items"]
    assert run["dead_letter_id"] == letter["id"]
    assert letter["turn_id"] == run["id"]
    assert run["finished_at"] is not None
    assert run["duration_ms"] > 0

    # with dead letters switched off the run is just failed
    flags = await api.client.patch(
        "/api/v1/admin/resilience/flags", json={"dead_letters": False}, headers=api.as_()
    )
    assert flags.status_code == 200, flags.text
    api.fake.script.push_error(400, message="bad request")
    assert (await api.say(sid, "bad")).status_code == 502
    [failed] = (await api.get("/api/v1/runs", status="failed")).json()["items"]
    assert failed["dead_letter_id"] is None
    assert failed["error"]["type"].endswith("/dependency-rejected-request")


async def test_a_message_waiting_for_its_session_is_a_queued_run(api: Api) -> None:
    await api.create_agent()
    sid = await api.session()
    service = api.app.state.service
    queue = service.dispatcher.queue
    assert await queue.try_lease(sid, "another-replica", 30.0)  # someone else holds it
    acceptance = await service.submit_turn(sid, "calculate 1+1")
    turn = acceptance.message.turn_id
    run = (await api.get(f"/api/v1/runs/{turn}")).json()
    assert run["status"] == "queued"
    assert run["started_at"] is None
    await queue.release(sid, "another-replica")
    service.dispatcher.kick(sid)
    for _ in range(200):
        run = (await api.get(f"/api/v1/runs/{turn}")).json()
        if run["status"] == "completed":
            break
        await asyncio.sleep(0.02)
    assert run["status"] == "completed"
    assert datetime.fromisoformat(run["created_at"]) < datetime.fromisoformat(run["started_at"])


async def test_runs_are_paged_tenant_scoped_and_deleted_with_their_session(api: Api) -> None:
    await api.create_agent()
    sid = await api.session()
    turns = []
    for n in range(3):
        response = await api.say(sid, f"calculate {n}+1")
        turns.append(response.json()["turn_id"])
    first = (await api.get("/api/v1/runs", limit=2)).json()
    assert [r["id"] for r in first["items"]] == turns[::-1][:2]  # newest first
    assert first["total"] == 3
    assert first["next_cursor"]
    rest = (await api.get("/api/v1/runs", limit=2, cursor=first["next_cursor"])).json()
    assert [r["id"] for r in rest["items"]] == [turns[0]]
    oldest_first = (await api.get(f"/api/v1/sessions/{sid}/runs", sort="created_at")).json()
    assert [r["id"] for r in oldest_first["items"]] == turns

    # another tenant sees none of it
    assert (await api.get(f"/api/v1/runs/{turns[0]}", token=OTHER)).status_code == 404
    assert (await api.get(f"/api/v1/sessions/{sid}/runs", token=OTHER)).status_code == 404
    assert (await api.get("/api/v1/runs", token=OTHER)).json()["items"] == []
    assert (await api.get("/api/v1/runs", token=None)).status_code == 401

    deleted = await api.client.delete(f"/api/v1/sessions/{sid}", headers=api.as_(ADMIN))
    assert deleted.status_code == 204
    assert (await api.get(f"/api/v1/runs/{turns[0]}")).status_code == 404
    assert (await api.get("/api/v1/runs")).json()["total"] == 0


async def test_runs_on_the_redis_backend(make_api: MakeApi) -> None:
    if redis_server_path() is None:
        pytest.fail(INSTALL_HINT)
    with running_redis() as redis:
        state = StateSettings(backend="redis", redis_url=redis.url)
        async with make_api(state=state) as api:
            await api.create_agent()
            sid = await api.session()
            turn = (await api.say(sid, "calculate 5*5")).json()["turn_id"]
            run = (await api.get(f"/api/v1/runs/{turn}")).json()
            assert run["status"] == "completed"
            assert run["tool_calls"][0]["name"] == "calculate"
            assert (await api.get("/api/v1/runs", session_id=sid)).json()["total"] == 1
