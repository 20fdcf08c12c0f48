"""`preflight-clearinghouse`: run the clearinghouse and administer its database.

    preflight-clearinghouse serve          run the gRPC server, relay and agents until SIGTERM
    preflight-clearinghouse migrate        bring the database schema up to date
    preflight-clearinghouse verify-audit   check the audit log's hash chain against the last signed
                                           checkpoint (exit 1 when broken)
    preflight-clearinghouse keygen         print a new signing key (PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE)

Configuration comes from the environment (see the service README).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kafka.errors import KafkaError
from preflight_common.cli import run_cli, service_parser
from preflight_common.db import make_engine

from preflight_clearinghouse.adapters.checkpoints import last_published, read_checkpoint_file
from preflight_clearinghouse.adapters.signing import ReportSigner, generate_key
from preflight_clearinghouse.adapters.store.reviews import SqlReviewsReader
from preflight_clearinghouse.bootstrap import migrate, signer_from_env
from preflight_clearinghouse.config import ClearinghouseSettings
from preflight_clearinghouse.domain.audit import Checkpoint, verified_checkpoint
from preflight_clearinghouse.domain.errors import FieldViolation, InvalidInput
from preflight_clearinghouse.service_layer.reviews import verify_against


def _parser() -> argparse.ArgumentParser:
    parser, commands = service_parser(
        "preflight-clearinghouse",
        "Preflight clearinghouse: signed review reports and the findings registry.",
        serve="the gRPC server, the outbox relay and the consumers",
    )
    verify = commands.add_parser(
        "verify-audit",
        help="check the audit log's hash chain against the last signed checkpoint published on the audit "
        "checkpoints topic; exit 1 if an entry was altered, removed or truncated",
    )
    source = verify.add_mutually_exclusive_group()
    source.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="check against this signed checkpoint instead (JSON with the base64 'body' and 'signature' "
        "of an AuditCheckpoint or of a signed report)",
    )
    source.add_argument(
        "--no-checkpoint",
        action="store_true",
        help="check the chain against itself and its stored head only (blind to truncation and to a "
        "chain recomputed by whoever holds the database)",
    )
    verify.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the brokers (default 30)"
    )
    commands.add_parser("keygen", help="print a new Ed25519 signing key (base64) and its key id")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    if args.command == "keygen":
        key = generate_key()
        print(f"key id: {ReportSigner.from_key_text(key).key_id}", file=sys.stderr)
        print("signing key for PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE (keep it secret):", file=sys.stderr)
        print(key)
        return 0
    settings = ClearinghouseSettings.from_env()
    if args.command == "serve":
        # Imported here: the other commands need no Kafka client nor gRPC, and start faster without them.
        from preflight_clearinghouse.entrypoints.server import run_until_signal

        run_until_signal(settings)
        return 0
    migrate(settings.database_url)
    if args.command == "migrate":
        print("database is up to date")
        return 0
    try:
        checkpoint = _checkpoint(args, settings)
    except (InvalidInput, TimeoutError, KafkaError) as exc:
        print(f"preflight-clearinghouse: no usable checkpoint: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn, conn.begin():
            verdict = verify_against(SqlReviewsReader(conn), checkpoint)
    finally:
        engine.dispose()
    if not verdict.ok:
        print(f"audit log BROKEN at entry {verdict.first_bad_seq}: {verdict.problem}", file=sys.stderr)
        return 1
    if checkpoint is None:
        print(f"audit log intact: {verdict.entries} entries (not checked against a signed checkpoint)")
    else:
        print(
            f"audit log intact: {verdict.entries} entries, matching the signed checkpoint of "
            f"{checkpoint.at.isoformat()} at entry {checkpoint.seq}"
        )
    return 0


def _checkpoint(args: argparse.Namespace, settings: ClearinghouseSettings) -> Checkpoint | None:
    """The signed checkpoint to check against (verified with the configured signing key), or None
    with --no-checkpoint. InvalidInput for a file that holds no valid checkpoint; TimeoutError or
    KafkaError when the topic cannot be read; ConfigError when no key is configured."""
    if args.no_checkpoint:
        return None
    public_key = signer_from_env(settings, create=False).public_key
    if args.checkpoint is not None:
        try:
            body, signature = read_checkpoint_file(args.checkpoint)
        except ValueError as exc:
            raise InvalidInput([FieldViolation("--checkpoint", str(exc))]) from None
        return verified_checkpoint(public_key, body, signature)
    topic = settings.topics.audit_checkpoints
    found = last_published(settings.kafka, topic, public_key, timeout=args.timeout)
    if found is None:
        raise InvalidInput([FieldViolation(topic, "holds no checkpoint signed with this key")])
    return found


if __name__ == "__main__":
    sys.exit(main())
