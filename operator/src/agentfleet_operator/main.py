"""``agentfleet-operator``: health server, leader election, then kopf with our handlers.

Flags mirror ``kopf run`` where they overlap (``--namespace``, ``--verbose``, ``--debug``);
everything else comes from ``AGENTFLEET_OPERATOR_*`` environment variables (see
:mod:`agentfleet_operator.settings`). Exit status: 0 after SIGTERM/SIGINT, 1 when the
leader Lease was lost (the replica restarts as a follower).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Sequence

import kopf

from agentfleet_operator.context import METRICS_KEY, SETTINGS_KEY
from agentfleet_operator.handlers import create_registry
from agentfleet_operator.handlers.lifecycle import connection_info
from agentfleet_operator.health import HealthServer, HealthState
from agentfleet_operator.kube import KubeClient
from agentfleet_operator.leader import LeaderElector
from agentfleet_operator.observability import OperatorMetrics, configure_logging
from agentfleet_operator.settings import OperatorSettings

logger = logging.getLogger("agentfleet.operator")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="agentfleet-operator",
        description="Reconcile agentfleet.dev custom resources into running agents.",
    )
    parser.add_argument(
        "--health-address",
        default=None,
        help="host:port of /healthz, /readyz and /metrics "
        "(default: AGENTFLEET_OPERATOR_HEALTH_ADDRESS or 0.0.0.0:8080); '' turns it off",
    )
    parser.add_argument(
        "--liveness",
        dest="liveness_endpoint",
        default="",
        help="also serve kopf's own liveness endpoint at this URL (off by default)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        help="watch this namespace (repeatable); overrides AGENTFLEET_OPERATOR_NAMESPACES",
    )
    parser.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch the whole cluster"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="debug logging, kopf internals too")
    parser.add_argument(
        "--log-format", choices=["plain", "json"], default="json", help="log format"
    )
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> OperatorSettings:
    settings = OperatorSettings.from_env()
    updates: dict[str, object] = {}
    if args.all_namespaces:
        updates["namespaces"] = ()
    elif args.namespaces:
        updates["namespaces"] = tuple(args.namespaces)
    if args.health_address is not None:
        updates["health_address"] = args.health_address
    if not updates:
        return settings
    return OperatorSettings.model_validate({**settings.model_dump(), **updates})


async def run(settings: OperatorSettings, args: argparse.Namespace) -> int:
    """Serve health, win the Lease (if enabled), run kopf until stopped or the Lease is
    lost."""
    metrics = OperatorMetrics()
    state = HealthState()
    health = (
        HealthServer(settings.health_address, metrics, state) if settings.health_address else None
    )
    stop = asyncio.Event()
    lost = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    elector: LeaderElector | None = None
    lease_client: KubeClient | None = None
    if health is not None:
        await health.start()
    try:
        if settings.leader_election:
            lease_client = KubeClient(request_timeout=settings.request_timeout_seconds)
            info = connection_info(settings, kopf.OperatorSettings())
            if info is None:
                logger.error("no Kubernetes credentials found for leader election")
                return 2
            await lease_client.connect(info)
            elector = LeaderElector(
                lease_client,
                namespace=settings.lease_namespace,
                name=settings.leader_election_lease,
                identity=settings.pod_name or socket.gethostname(),
                lease_duration=settings.lease_duration_seconds,
                metrics=metrics,
            )
            state.role = "standby"
            acquiring = asyncio.create_task(elector.acquire())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (acquiring, stopping):
                task.cancel()
            if stop.is_set():
                return 0
        state.role = "leader"
        return await _run_kopf(settings, args, metrics, state, stop, lost, elector)
    finally:
        state.role, state.ready = "stopping", False
        if elector is not None:
            await elector.release()
        if lease_client is not None:
            await lease_client.close()
        if health is not None:
            await health.stop()


async def _run_kopf(
    settings: OperatorSettings,
    args: argparse.Namespace,
    metrics: OperatorMetrics,
    state: HealthState,
    stop: asyncio.Event,
    lost: asyncio.Event,
    elector: LeaderElector | None,
) -> int:
    kopf_stop = asyncio.Event()
    ready = asyncio.Event()
    watchers = [
        asyncio.create_task(_relay(stop, kopf_stop)),
        asyncio.create_task(_relay(lost, kopf_stop)),
    ]
    if elector is not None:
        watchers.append(asyncio.create_task(elector.hold(lost)))
    watchers.append(asyncio.create_task(_mark_ready(ready, state)))
    try:
        await kopf.operator(
            registry=create_registry(),
            clusterwide=settings.clusterwide,
            namespaces=list(settings.namespaces),
            standalone=settings.standalone,
            liveness_endpoint=args.liveness_endpoint or None,
            memo=kopf.Memo({SETTINGS_KEY: settings, METRICS_KEY: metrics}),
            stop_flag=kopf_stop,
            ready_flag=ready,
        )
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    if lost.is_set():
        logger.error("the leader Lease was lost: exiting so that the replica restarts")
        return 1
    return 0


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _mark_ready(ready: asyncio.Event, state: HealthState) -> None:
    await ready.wait()
    state.ready = True


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    settings = settings_from(args)
    level = logging.DEBUG if args.verbose or args.debug else logging.INFO
    configure_logging(log_format=args.log_format, level=level)
    if not args.debug:
        logging.getLogger("kopf").setLevel(max(level, logging.INFO))
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    sys.exit(asyncio.run(run(settings, args)))


if __name__ == "__main__":  # pragma: no cover
    main()
