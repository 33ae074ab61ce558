"""A real ``redis-server`` process on a free port, for tests and benchmarks, with the
controls fault-injection tests need (stop, restart on the same port); and a Sentinel
setup (a primary, a replica, Sentinels: :func:`running_sentinel`) for failover tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from agentfleet_runtime.testing.servers import free_port

INSTALL_HINT = (
    "redis-server is not installed. Install it with `sudo apt-get install -y redis-server` "
    "(Debian/Ubuntu) or `brew install redis` (macOS); the tests start and stop it themselves."
)


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


@dataclass
class RedisServer:
    """One ``redis-server`` process. ``url`` stays the same across :meth:`restart`."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    extra_args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        binary = redis_server_path()
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.process = subprocess.Popen(
            [
                binary,
                *self.leading_args(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--protected-mode", "yes",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer on port {self.port}")

    def leading_args(self) -> list[str]:
        return []

    def client(self) -> redis.Redis:
        """A plain synchronous client of this process (for setting up and checking)."""
        return redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)

    def stop(self) -> None:
        """Kill the server abruptly (as a crash or a network cut would)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@contextlib.contextmanager
def running_redis(*extra_args: str) -> Iterator[RedisServer]:
    """Start ``redis-server`` on a free port; stop it and remove its files afterwards."""
    with tempfile.TemporaryDirectory(prefix="agentfleet-redis-") as workdir:
        server = RedisServer(port=free_port(), workdir=Path(workdir), extra_args=extra_args)
        server.start()
        try:
            yield server
        finally:
            server.stop()


# -- Sentinel ---------------------------------------------------------------------------


@dataclass
class SentinelProcess(RedisServer):
    """``redis-server <sentinel.conf> --sentinel`` watching ``service`` at ``primary_port``.
    Sentinel rewrites its configuration file, so it lives in ``workdir``."""

    service: str = "mymaster"
    primary_port: int = 0
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000

    def leading_args(self) -> list[str]:
        conf = self.workdir / f"sentinel-{self.port}.conf"
        if not conf.exists():
            name = self.service
            conf.write_text(
                f"sentinel monitor {name} 127.0.0.1 {self.primary_port} 1\n"
                f"sentinel down-after-milliseconds {name} {self.down_after_ms}\n"
                f"sentinel failover-timeout {name} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {name} 1\n"
            )
        return [str(conf), "--sentinel"]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class SentinelSetup:
    """A primary, its replica and the Sentinels watching them (quorum 1)."""

    primary: RedisServer
    replica: RedisServer
    sentinels: list[SentinelProcess]
    service: str = "mymaster"

    @property
    def addresses(self) -> list[str]:
        return [s.address for s in self.sentinels]

    def primary_port(self) -> int:
        """The primary's port as the first Sentinel names it now."""
        with self.sentinels[0].client() as client:
            _, port = client.sentinel_get_master_addr_by_name(self.service)
        return int(port)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError):
                if condition():
                    return
            time.sleep(0.05)
        raise TimeoutError(f"sentinel setup: {what} after {timeout} s")

    def wait_for_primary(self, port: int, timeout: float = 20.0) -> None:
        """Until every Sentinel names ``port`` as the primary and that node says so."""

        def promoted() -> bool:
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    _, named = client.sentinel_get_master_addr_by_name(self.service)
                if int(named) != port:
                    return False
            with redis.Redis(port=port, socket_timeout=2, decode_responses=True) as node:
                return bool(node.info("replication")["role"] == "master")

        self.wait_for(promoted, f"port {port} is not the primary", timeout)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until the replica is in sync and every Sentinel knows it and the others."""

        def ready() -> bool:
            with self.replica.client() as replica:
                if replica.info("replication").get("master_link_status") != "up":
                    return False
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    known = client.sentinel_slaves(self.service)
                    master = client.sentinel_master(self.service)
                ok = [r for r in known if r["port"] == self.replica.port and not r["is_sdown"]]
                if not ok or master["num-other-sentinels"] < len(self.sentinels) - 1:
                    return False
            return True

        self.wait_for(ready, "the replica or the Sentinels are not ready", timeout)

    def sync_replica(self, timeout_ms: int = 5000) -> None:
        """Wait until the replica has every write the primary took (``WAIT 1``)."""
        with self.primary.client() as client:
            if client.execute_command("WAIT", 1, timeout_ms) < 1:
                raise TimeoutError("the replica did not acknowledge the primary's writes")


@contextlib.contextmanager
def running_sentinel(
    sentinels: int = 1,
    *,
    service: str = "mymaster",
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 3000,
) -> Iterator[SentinelSetup]:
    """Start a primary, a replica (``--replicaof``) and ``sentinels`` Sentinels (quorum 1:
    any Sentinel may start a failover; ``down_after_ms`` of silence marks the primary
    down), each on a free port in a temporary directory; wait until the replica is in sync
    and the Sentinels know it; stop everything and remove the files afterwards. A failover
    after the primary dies takes a few seconds with the defaults."""
    with tempfile.TemporaryDirectory(prefix="agentfleet-sentinel-") as workdir:
        root = Path(workdir)
        started: list[RedisServer] = []
        try:
            # no 5 s wait before the replica's first full sync (nor after a failover)
            fast_sync = ("--repl-diskless-sync-delay", "0")
            primary = RedisServer(
                port=free_port(), workdir=_subdir(root, "primary"), extra_args=fast_sync
            )
            primary.start()
            started.append(primary)
            replica = RedisServer(
                port=free_port(),
                workdir=_subdir(root, "replica"),
                extra_args=("--replicaof", "127.0.0.1", str(primary.port), *fast_sync),
            )
            replica.start()
            started.append(replica)
            watchers: list[SentinelProcess] = []
            for n in range(sentinels):
                sentinel = SentinelProcess(
                    port=free_port(),
                    workdir=_subdir(root, f"sentinel{n}"),
                    service=service,
                    primary_port=primary.port,
                    down_after_ms=down_after_ms,
                    failover_timeout_ms=failover_timeout_ms,
                )
                sentinel.start()
                started.append(sentinel)
                watchers.append(sentinel)
            setup = SentinelSetup(primary, replica, watchers, service)
            setup.wait_ready()
            yield setup
        finally:
            for process in reversed(started):
                process.stop()


def _subdir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    return path
