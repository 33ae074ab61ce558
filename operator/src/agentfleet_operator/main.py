"""``agentfleet-operator``: run kopf with agentfleet's handlers.

Flags mirror ``kopf run`` where they overlap (``--liveness``, ``--namespace``,
``--verbose``, ``--debug``); everything else comes from ``AGENTFLEET_OPERATOR_*``
environment variables (see :mod:`agentfleet_operator.settings`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import kopf

from agentfleet_operator.handlers import create_registry
from agentfleet_operator.handlers.context import SETTINGS_KEY
from agentfleet_operator.settings import OperatorSettings

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="agentfleet-operator",
        description="Reconcile agentfleet.dev custom resources into running agents.",
    )
    parser.add_argument(
        "--liveness",
        dest="liveness_endpoint",
        default=DEFAULT_LIVENESS,
        help=f"kopf's liveness endpoint (default: {DEFAULT_LIVENESS}); '' turns it off",
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
        "--log-format", choices=["plain", "full", "json"], default="json", help="log format"
    )
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> OperatorSettings:
    settings = OperatorSettings.from_env()
    if args.all_namespaces:
        return settings.model_copy(update={"namespaces": ()})
    if args.namespaces:
        return OperatorSettings.model_validate(
            {**settings.model_dump(), "namespaces": tuple(args.namespaces)}
        )
    return settings


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    settings = settings_from(args)
    kopf.configure(
        verbose=args.verbose,
        debug=args.debug,
        log_format=kopf.LogFormat[args.log_format.upper()],
    )
    kopf.run(
        registry=create_registry(),
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        standalone=settings.standalone,
        liveness_endpoint=args.liveness_endpoint or None,
        memo=kopf.Memo({SETTINGS_KEY: settings}),
    )


if __name__ == "__main__":  # pragma: no cover
    main()
