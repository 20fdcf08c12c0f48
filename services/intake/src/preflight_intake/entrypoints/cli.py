"""`preflight-intake`: run the intake service and administer its database.

    preflight-intake serve                 run the gRPC server, relay and agents until SIGTERM
    preflight-intake migrate               bring the database schema up to date
    preflight-intake token create ...      issue a token straight into the database (bootstrap)
    preflight-intake token revoke ID       revoke a token
    preflight-intake keygen [--key-id ID]  print a fresh entry of the PREFLIGHT_INTAKE_ENCRYPTION_KEYS_FILE
    preflight-intake reencrypt             re-seal stored credentials with the active (first) key

Configuration comes from the environment (see the service README).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from preflight_common.auth import Principal, Role
from preflight_common.cli import run_cli, service_parser
from preflight_common.db import make_engine

from preflight_intake.adapters.crypto import new_key_entry
from preflight_intake.bootstrap import build, keyring_from_env, migrate, token_store
from preflight_intake.config import IntakeSettings
from preflight_intake.entrypoints.server import run_until_signal


def _parser() -> argparse.ArgumentParser:
    parser, commands = service_parser(
        "preflight-intake",
        "Preflight intake service: labs submit model versions for pre-release review.",
        serve="the gRPC server, the outbox relay and the progress consumers",
    )
    keygen = commands.add_parser(
        "keygen", help="print a new keyid:base64key for the file PREFLIGHT_INTAKE_ENCRYPTION_KEYS_FILE names"
    )
    keygen.add_argument(
        "--key-id", default=datetime.now(UTC).strftime("k%Y%m%d"), help="the key id (default: kYYYYMMDD)"
    )
    commands.add_parser(
        "reencrypt", help="re-seal every stored credential with the active key (after adding a new first key)"
    )
    token = commands.add_parser("token", help="issue or revoke bearer tokens directly in the database")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="issue a token and print it once")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--organisation", required=True)
    create.add_argument("--principal-id", help="default: <role>@<organisation>")
    create.add_argument("--sector", action="append", default=[], help="an operator's sector (repeatable)")
    create.add_argument("--expires-in-days", type=float, help="default: PREFLIGHT_INTAKE_TOKEN_LIFETIME_DAYS")
    create.add_argument("--description", default="")
    revoke = token_commands.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    if args.command == "keygen":
        print(new_key_entry(args.key_id))
        return 0
    settings = IntakeSettings.from_env()
    if args.command == "serve":
        run_until_signal(settings, keyring_from_env())
        return 0
    migrate(settings.database_url)
    if args.command == "migrate":
        print("database is up to date")
        return 0
    if args.command == "reencrypt":
        components = build(settings, keyring_from_env())
        try:
            count = components.store.reseal_credentials()
        finally:
            components.engine.dispose()
        print(f"re-encrypted {count} credential(s) with key {keyring_from_env().active_key_id}")
        return 0
    engine = make_engine(settings.database_url)
    try:
        tokens = token_store(engine, settings)
        if args.token_command == "revoke":  # noqa: S105 - a subcommand name
            if not tokens.revoke(args.token_id):
                print(f"preflight-intake: no active token with id {args.token_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.token_id}")
            return 0
        role = Role(args.role)
        principal = Principal(
            args.principal_id or f"{role.value}@{args.organisation}",
            role,
            args.organisation,
            frozenset(args.sector),
        )
        expires = datetime.now(UTC) + timedelta(days=args.expires_in_days) if args.expires_in_days else None
        try:
            issued = tokens.create(principal, expires, args.description)
        except ValueError as exc:
            print(f"preflight-intake: {exc}", file=sys.stderr)
            return 1
        print(f"token id:   {issued.token_id}", file=sys.stderr)
        print(
            f"principal:  {principal.principal_id} ({role.value}, {principal.organisation})", file=sys.stderr
        )
        print(f"expires at: {issued.expires_at.isoformat()}", file=sys.stderr)
        print("the token (shown once; store it now):", file=sys.stderr)
        print(issued.token)
        return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
