"""`preflight-notifier`: run the notifier service and administer its database.

    preflight-notifier serve      run the gRPC API, agents, scheduler and deliveries until SIGTERM
    preflight-notifier migrate    bring the database schema up to date
    preflight-notifier check      read the routing file and report what it configures

Configuration comes from the environment (see the service README).
"""

from __future__ import annotations

import argparse
import logging
import sys

from preflight_common.config import ConfigError

from preflight_notifier.adapters.routing_file import load_routing
from preflight_notifier.bootstrap import migrate
from preflight_notifier.config import NotifierSettings
from preflight_notifier.entrypoints.server import run_until_signal


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preflight-notifier",
        description="Preflight notifier: deadline alerts, the alerts topic, signed webhooks and e-mail.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run the service until SIGTERM/SIGINT (migrates the database first)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    commands.add_parser("check", help="validate the routing file (PREFLIGHT_NOTIFIER_ROUTING_FILE)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
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
    except ConfigError as exc:
        print(f"preflight-notifier: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
