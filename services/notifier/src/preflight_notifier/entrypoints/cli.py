"""`preflight-notifier`: run the notifier service and administer its database.

    preflight-notifier serve      run the gRPC API, agents, scheduler and deliveries until SIGTERM
    preflight-notifier migrate    bring the database schema up to date
    preflight-notifier check      read the routing file and report what it configures

Configuration comes from the environment (see the service README).
"""

from __future__ import annotations

import argparse
import sys

from preflight_common.cli import run_cli, service_parser

from preflight_notifier.adapters.routing_file import load_routing
from preflight_notifier.bootstrap import migrate
from preflight_notifier.config import NotifierSettings
from preflight_notifier.entrypoints.server import run_until_signal


def _parser() -> argparse.ArgumentParser:
    parser, commands = service_parser(
        "preflight-notifier",
        "Preflight notifier: deadline alerts, the alerts topic, signed webhooks and e-mail.",
        serve="the gRPC API, the consumers, the scheduler and the deliveries (migrating the database first)",
    )
    commands.add_parser("check", help="validate the routing file (PREFLIGHT_NOTIFIER_ROUTING_FILE)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    settings = NotifierSettings.from_env()
    if args.command == "serve":
        run_until_signal(settings)
    elif args.command == "migrate":
        migrate(settings.database_url)
        print("database is up to date")
    else:
        routing = load_routing(settings.routing_file)
        print(f"{settings.routing_file}: ok")
        for kind, policy in routing.policies.items():
            thresholds = ", ".join(t.name for t in policy.thresholds)
            repeat = f"; overdue every {policy.overdue.every}" if policy.overdue else ""
            print(f"  {kind.value}: {thresholds}{repeat}")
        print(f"  receivers: {', '.join(sorted(routing.receivers))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
