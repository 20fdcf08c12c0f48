"""`preflight-clearinghouse`: run the clearinghouse and administer its database.

    preflight-clearinghouse serve          run the gRPC server, relay and agents until SIGTERM
    preflight-clearinghouse migrate        bring the database schema up to date
    preflight-clearinghouse verify-audit   check the audit log's hash chain (exit 1 when broken)
    preflight-clearinghouse keygen         print a new PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY value

Configuration comes from the environment (see the service README).
"""

from __future__ import annotations

import argparse
import logging
import sys

from preflight_common.config import ConfigError
from preflight_common.db import make_engine

from preflight_clearinghouse.adapters.signing import ReportSigner, generate_key
from preflight_clearinghouse.adapters.store import Reader
from preflight_clearinghouse.bootstrap import migrate
from preflight_clearinghouse.config import ClearinghouseSettings
from preflight_clearinghouse.domain.audit import verify_chain


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preflight-clearinghouse",
        description="Preflight clearinghouse: signed review reports and the findings registry.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run the service until SIGTERM/SIGINT")
    commands.add_parser("migrate", help="bring the database schema up to date")
    commands.add_parser(
        "verify-audit", help="check the audit log's hash chain; exit 1 if an entry was altered or removed"
    )
    commands.add_parser("keygen", help="print a new Ed25519 signing key (base64) and its key id")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"preflight-clearinghouse: configuration error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "keygen":
        key = generate_key()
        print(f"key id: {ReportSigner.from_setting(key).key_id}", file=sys.stderr)
        print("PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY (keep it secret):", file=sys.stderr)
        print(key)
        return 0
    settings = ClearinghouseSettings.from_env()
    if args.command == "serve":
        # Imported here: the other commands need neither faust nor gRPC, and start faster without them.
        from preflight_clearinghouse.entrypoints.server import run_until_signal

        run_until_signal(settings)
        return 0
    migrate(settings.database_url)
    if args.command == "migrate":
        print("database is up to date")
        return 0
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn, conn.begin():
            reader = Reader(conn)
            head_seq, head_hash = reader.audit_head()
            verdict = verify_chain(reader.audit_entries(), head_seq, head_hash)
    finally:
        engine.dispose()
    if verdict.ok:
        print(f"audit log intact: {verdict.entries} entries")
        return 0
    print(f"audit log BROKEN at entry {verdict.first_bad_seq}: {verdict.problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
