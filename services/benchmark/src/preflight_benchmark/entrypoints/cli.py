"""`preflight-benchmark`: run the benchmark service, migrate its database, show the suite catalog."""

from __future__ import annotations

import argparse
import sys

from preflight_common.cli import run_cli, service_parser
from preflight_common.config import ConfigError

from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.bootstrap import migrate
from preflight_benchmark.config import BenchmarkSettings
from preflight_benchmark.domain.catalog import CatalogError


def main(argv: list[str] | None = None) -> int:
    parser, commands = service_parser(
        "preflight-benchmark",
        "Preflight benchmark service: plans suites per submission, dispatches workers, "
        "publishes results. Configured by PREFLIGHT_* environment variables (see the README).",
        serve="the gRPC API, the planner, the dispatcher and the outbox relay",
    )
    catalog_command = commands.add_parser("catalog", help="print the suite catalog in use")
    catalog_command.add_argument(
        "--check",
        action="store_true",
        help="also check every suite without running it: pinned package installed, task registered, "
        "arguments of the types the task declares (exit status 2 if one fails)",
    )
    return run_cli(parser, _run, argv, config_errors=(ConfigError, CatalogError))


def _run(args: argparse.Namespace) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
