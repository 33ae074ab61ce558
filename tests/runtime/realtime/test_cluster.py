"""Three runtime processes (``agentfleet serve``) on one real Redis: cross-replica
delivery, a session continuing on any replica, a replica killed mid-turn (the turn is
recovered on another, the client resumes with no lost or duplicated event), and a
graceful SIGTERM (readiness false, 1012, the running turn handed over)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
import yaml

from agentfleet import AgentfleetClient
from agentfleet.realtime import SessionState
from agentfleet_crds.contract import AgentConfig, RuntimeConfig
from agentfleet_crds.v1alpha1 import AgentSpec, ModelProviderName, ModelSpec
from agentfleet_runtime.providers.fake.script import FakeReply, FakeScript
from agentfleet_runtime.testing.fake_provider import running_fake_provider
from agentfleet_runtime.testing.redis import RedisServer, running_redis
from agentfleet_runtime.testing.servers import free_port

CLI = str(Path(sys.executable).parent / "agentfleet")
TOKEN = "cluster-token"
SLOW = FakeReply(text=" ".join(f"t{i}" for i in range(60)), chunk_delay_seconds=0.05)


class ThreadedFake:
    """The fake model provider on its own thread and loop, shared by the module."""

    def __init__(self) -> None:
        self.script = FakeScript()
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        self._ready.wait(10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_fake_provider(self.script) as fake:
            self.url = fake.url
            self._ready.set()
            await self._stop.wait()

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@dataclass
class Replica:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    redis: RedisServer
    fake: ThreadedFake
    replicas: dict[str, Replica]


def _start(name: str, config: Path, redis: RedisServer, fake: ThreadedFake) -> Replica:
    port = free_port()
    env = {
        **os.environ,
        "AGENTFLEET_REPLICA_ID": name,
        "AGENTFLEET_FAKE_PROVIDER_URL": fake.url,
        "AGENTFLEET_LOG_FORMAT": "console",
        "AGENTFLEET_LOG_LEVEL": "WARNING",
        "AGENTFLEET_SHUTDOWN_GRACE_SECONDS": "0.3",
        "AGENTFLEET_STATE__BACKEND": "redis",
        "AGENTFLEET_STATE__REDIS_URL": redis.url,
        "AGENTFLEET_STATE__TENANT": "cluster",
        "AGENTFLEET_STATE__LEASE_SECONDS": "1",
        "AGENTFLEET_STATE__SWEEP_INTERVAL_SECONDS": "0.2",
        "AGENTFLEET_REALTIME__HEARTBEAT_INTERVAL_SECONDS": "0.5",
        "AGENTFLEET_REALTIME__DRAIN_DELAY_SECONDS": "0.4",
        "AGENTFLEET_AUTH__MODE": "static",
        "AGENTFLEET_AUTH__TOKENS": json.dumps([{"token": TOKEN, "subject": "c"}]),
    }
    proc = subprocess.Popen(
        [CLI, "serve", "--config", str(config), "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Replica(name, port, proc)


def _wait_ready(replica: Replica, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert replica.proc.poll() is None, f"replica {replica.name} exited"
        with contextlib.suppress(httpx2.TransportError):
            if httpx2.get(f"{replica.url}/healthz/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"replica {replica.name} not ready")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    spec = AgentSpec(
        system_prompt="x", model=ModelSpec(provider=ModelProviderName.FAKE, name="fake-model")
    )
    config = tmp_path_factory.mktemp("cluster") / "runtime.yaml"
    runtime_config = RuntimeConfig(agents=[AgentConfig(name="calc", spec=spec)])
    config.write_text(yaml.safe_dump(runtime_config.model_dump(mode="json", by_alias=True)))
    fake = ThreadedFake()
    with running_redis() as redis:
        replicas = {n: _start(n, config, redis, fake) for n in ("A", "B", "C")}
        try:
            for replica in replicas.values():
                _wait_ready(replica)
            yield Cluster(redis, fake, replicas)
        finally:
            for replica in replicas.values():
                if replica.proc.poll() is None:
                    replica.proc.kill()
                replica.proc.wait(10)
            fake.close()


def client(*replicas: Replica) -> AgentfleetClient:
    first, *rest = replicas
    return AgentfleetClient(first.url, token=TOKEN, urls=[r.url for r in rest])


async def until_done(state: SessionState, turn_id: str, within: float = 20) -> None:
    async with asyncio.timeout(within):
        while state.turns.get(turn_id) is None or state.turns[turn_id].status == "running":  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def contiguous(state: SessionState) -> list[int]:
    ids = [e.id for e in state.events]
    assert ids == list(range(1, len(ids) + 1)), ids
    return ids


async def test_events_cross_replicas_and_a_session_continues_anywhere(cluster: Cluster) -> None:
    a, b, c = (cluster.replicas[n] for n in "ABC")
    async with client(a) as on_a, client(b) as on_b, client(c) as on_c:
        sid = (await on_b.create_session("calc")).id
        async with on_a.realtime() as rt:
            await rt.wait_connected()
            assert rt.replica == "A"
            state = await rt.subscribe(sid)
            cluster.fake.script.push_text("answered by a turn accepted on B")
            first = await on_b.send_message(sid, "one")  # runs where B put it
            await until_done(state, first.turn_id)
            assert state.turns[first.turn_id].answer == "answered by a turn accepted on B"
            cluster.fake.script.push_text("and continued on C")
            second = await on_c.send_message(sid, "two")
            await until_done(state, second.turn_id)
            contiguous(state)
        assert (await on_a.get_session(sid)).turns == 2
        history = await on_c.messages(sid)
        assert [m["content"] for m in history if m["role"] == "user"] == ["one", "two"]
        sse = []
        async with asyncio.timeout(5):
            async for event in on_c.follow_events(sid, after=2):
                sse.append(event.id)
                if event.id == state.last_event_id:
                    break
        assert sse == list(range(3, state.last_event_id + 1))


async def test_killing_a_replica_mid_turn_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    b, c = cluster.replicas["B"], cluster.replicas["C"]
    cluster.fake.script.push(SLOW, FakeReply(text="recovered answer"))
    async with client(b, c) as sdk:
        sid = (await sdk.create_session("calc")).id
        async with sdk.realtime(backoff_base=0.05) as rt:
            await rt.wait_connected()
            assert rt.replica == "B"
            state = await rt.subscribe(sid)
            ack = await rt.send(sid, "long answer please")  # accepted and run on B
            async with asyncio.timeout(10):
                while ack.turn_id not in state.turns or len(state.turns[ack.turn_id].text) < 20:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            b.proc.kill()  # SIGKILL: no goodbye, the lease lapses after 1 s
            await until_done(state, ack.turn_id)
            turn = state.turns[ack.turn_id]
            assert rt.replica == "C"
            assert turn.status == "completed"
            assert turn.attempts == 2
            assert turn.answer == "recovered answer"
            types = [e.type for e in state.events]
            assert types.count("turn.started") == 1
            assert types.count("turn.resumed") == 1
            assert types[-1] == "turn.completed"
            contiguous(state)
    async with client(c) as sdk:
        events = await sdk.events(sid)
        assert [e.id for e in events] == [e.id for e in state.events]


async def test_sigterm_drains_and_hands_the_running_turn_over(cluster: Cluster) -> None:
    a, c = cluster.replicas["A"], cluster.replicas["C"]
    cluster.fake.script.push(SLOW, FakeReply(text="finished elsewhere"))
    async with client(a, c) as sdk:
        sid = (await sdk.create_session("calc")).id
        async with sdk.realtime(backoff_base=0.05) as rt:
            await rt.wait_connected()
            assert rt.replica == "A"
            state = await rt.subscribe(sid)
            ack = await rt.send(sid, "long again")
            async with asyncio.timeout(10):
                while ack.turn_id not in state.turns or len(state.turns[ack.turn_id].text) < 10:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            a.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.15)
            ready = httpx2.get(f"{a.url}/healthz/ready", timeout=2)
            assert ready.status_code == 503  # readiness false before connections close
            await until_done(state, ack.turn_id)
            assert rt.replica == "C"  # told 1012, moved on
            turn = state.turns[ack.turn_id]
            assert turn.answer == "finished elsewhere"
            assert turn.attempts == 2
            contiguous(state)
        a.proc.wait(15)
        assert a.proc.returncode in (0, -signal.SIGTERM)
