"""`preflight-benchmark`: run the benchmark service, migrate its database, show the suite catalog."""

from __future__ import annotations

import argparse
import logging
import sys

from preflight_common.config import ConfigError

from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.bootstrap import migrate
from preflight_benchmark.config import BenchmarkSettings
from preflight_benchmark.domain.catalog import CatalogError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="preflight-benchmark",
        description="Preflight benchmark service: plans suites per submission, dispatches workers, "
        "publishes results. Configured by PREFLIGHT_* environment variables (see the README).",
    )
    parser.add_argument("--log-level", default="INFO", help="Python logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve", help="run the gRPC API, the planner agent, the dispatcher and the outbox relay"
    )
    commands.add_parser("migrate", help="bring the database (PREFLIGHT_DATABASE_URL) to the newest schema")
    catalog_command = commands.add_parser("catalog", help="print the suite catalog in use")
    catalog_command.add_argument(
        "--check",
        action="store_true",
        help="also check every suite without running it: pinned package installed, task registered, "
        "arguments of the types the task declares (exit status 2 if one fails)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "catalog":
            catalog = load_catalog()
            print(f"catalog {catalog.version}")
            for s in catalog.suites:
                kinds = ",".join(sorted(s.access_kinds))
                print(f"  {s.id} {s.version}  task={s.task}  capability={s.capability}  access={kinds}")
            if args.check:
                from preflight_benchmark.suites.published import check_suite

                for s in catalog.suites:
                    check_suite(s)
                print("every suite checks")
            return 0
        settings = BenchmarkSettings.from_env()
        if args.command == "migrate":
            migrate(settings.database_url)
            return 0
        from preflight_benchmark.entrypoints.server import run_until_signal

        run_until_signal(settings)
        return 0
    except (ConfigError, CatalogError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
