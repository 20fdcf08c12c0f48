"""The command line every service shares: `serve`, `migrate` (for a service with a database), the
service's own commands, `--log-level`, and one rule for configuration errors (named on stderr,
exit status 2).

A service's `entrypoints/cli.py` adds its own commands to the parser `service_parser` returns and
passes its dispatcher to `run_cli`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from preflight_common.config import ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def service_parser(
    prog: str, description: str, *, serve: str, migrate: bool = True
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    """The service's parser with `serve` (helped by `serve`, what it runs until SIGTERM) and, when
    `migrate`, `migrate`; returns it and its subcommands, for the service to add its own."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="Python logging level (default INFO)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help=f"run {serve} until SIGTERM/SIGINT")
    if migrate:
        commands.add_parser("migrate", help="bring the database schema up to date")
    return parser, commands


def run_cli(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
    *,
    config_errors: tuple[type[Exception], ...] = (ConfigError,),
) -> int:
    """Parse `argv`, set up logging and return `run(args)`; a configuration error (any of
    `config_errors`) is printed as `<prog>: configuration error: ...` and answered with 2."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT)
    try:
        return run(args)
    except config_errors as exc:
        print(f"{parser.prog}: configuration error: {exc}", file=sys.stderr)
        return 2
