"""`preflight`: submit a model version for pre-release review and follow it.

Connection: --target (or PREFLIGHT_TARGET, default localhost:50051), a bearer
token from --token-file or PREFLIGHT_TOKEN, --tls / --ca-file / --cert-file
--key-file for TLS and mTLS. Output is readable text; --json prints JSON
(one object per line for `watch`). Exit codes: 0 success, 1 the service
refused or failed the call, 2 a usage or manifest error.

`preflight alert follow` reads an operator organisation's finding alerts from
the event bus (Kafka) instead: --bootstrap, --user, --password-file,
--security-protocol, --kafka-ca-file (or the PREFLIGHT_KAFKA_* variables the
services read), --organisation (PREFLIGHT_ORGANISATION) and --sector
(PREFLIGHT_SECTORS, comma-separated). The password is only ever read from its file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.common.v1 import common_pb2
from preflight.identity.v1 import identity_pb2
from preflight.intake.v1 import intake_pb2
from preflight.notifier.v1 import events_pb2
from preflight.sdk._common import TLS
from preflight.sdk.alerts import AlertSubscription, ReceivedAlert, subscribe_alerts
from preflight.sdk.client import Client
from preflight.sdk.errors import PreflightError
from preflight.sdk.manifest import ManifestError, load_manifest, parse_time
from preflight.sdk.naming import DEFAULT_ALERTS_PREFIX

DEFAULT_TARGET = "localhost:50051"
STATUS_NAMES = [n.removeprefix("SUBMISSION_STATUS_") for n in intake_pb2.SubmissionStatus.keys()][1:]  # noqa: SIM118
ROLE_NAMES = [n.removeprefix("ROLE_").lower() for n in identity_pb2.Role.keys()][1:]  # noqa: SIM118


class UsageError(Exception):
    """A local mistake (bad option value, unreadable file); exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preflight",
        description="Submit a model version to Preflight for pre-release review, and follow it.",
        epilog="Exit codes: 0 success, 1 the service refused or failed the call, 2 usage or manifest error.",
    )
    # Connection options are accepted before or after the command: after it, they are only set
    # when given (SUPPRESS), so they never reset what was given before it.
    _connection_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=[common])

    submit = command("submit", "submit the model version described by a manifest (YAML)")
    submit.add_argument("manifest", type=Path)
    submit.add_argument(
        "--idempotency-key", help="overrides the manifest's (default: derived from its content)"
    )
    command("status", "show one submission").add_argument("submission_id")
    listing = command("list", "list the submissions you may see, newest first")
    listing.add_argument("--status", action="append", choices=STATUS_NAMES, default=[], help="repeatable")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    command("watch", "follow a submission's status until it is closed or withdrawn").add_argument(
        "submission_id"
    )
    update = command("update-release", "move the planned release (and the access window)")
    update.add_argument("submission_id")
    update.add_argument("--release", required=True, help="new planned release: RFC 3339 time or +Nd/+Nh/+Nm")
    update.add_argument("--window-start", help="new access window start (with --window-end)")
    update.add_argument("--window-end", help="new access window end (with --window-start)")
    update.add_argument("--reason", default="")
    withdraw = command("withdraw", "withdraw a submission")
    withdraw.add_argument("submission_id")
    withdraw.add_argument("--reason", default="")
    token = command("token", "issue or revoke bearer tokens (admin)")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="issue a token; it is printed once", parents=[common])
    create.add_argument("--principal-id", required=True)
    create.add_argument("--role", required=True, choices=ROLE_NAMES)
    create.add_argument("--organisation", required=True)
    create.add_argument("--sector", action="append", default=[], help="an operator's sector (repeatable)")
    create.add_argument("--expires-in-days", type=float, help="default: the server's token lifetime")
    create.add_argument("--description", default="")
    revoke = token_commands.add_parser("revoke", help="revoke a token by its id", parents=[common])
    revoke.add_argument("token_id")
    alert = commands.add_parser("alert", help="an operator's finding alerts, from the event bus (Kafka)")
    alert_commands = alert.add_subparsers(dest="alert_command", required=True, metavar="ACTION")
    follow = alert_commands.add_parser(
        "follow",
        help="print your organisation's finding alerts as they arrive (Ctrl-C stops)",
        description="Print your organisation's finding alerts as they arrive, each once; Ctrl-C stops.",
    )
    _kafka_options(follow)
    follow.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    return parser


def _kafka_options(parser: argparse.ArgumentParser) -> None:
    env = "PREFLIGHT_KAFKA_"
    parser.add_argument("--bootstrap", help=f"Kafka host:port[,host:port] (env {env}BOOTSTRAP_SERVERS)")
    parser.add_argument("--organisation", help="your organisation (env PREFLIGHT_ORGANISATION)")
    parser.add_argument(
        "--sector", action="append", help="one of your sectors, repeatable (env PREFLIGHT_SECTORS: a,b)"
    )
    parser.add_argument("--user", help=f"SASL user (env {env}SASL_USERNAME; default operator-ORGANISATION)")
    parser.add_argument(
        "--password-file", help=f"file holding the SASL password (env {env}SASL_PASSWORD_FILE)"
    )
    parser.add_argument(
        "--security-protocol", help=f"SASL_SSL, SASL_PLAINTEXT… (env {env}SECURITY_PROTOCOL; SASL_SSL)"
    )
    parser.add_argument("--kafka-ca-file", help=f"CA certificate of the brokers (PEM; env {env}SSL_CAFILE)")
    parser.add_argument(
        "--alerts-prefix",
        help=f"alert topic prefix (env PREFLIGHT_TOPIC_ALERTS_PREFIX; {DEFAULT_ALERTS_PREFIX})",
    )
    parser.add_argument(
        "--name", default="alerts", help="consumer group: operator-ORGANISATION.NAME (alerts)"
    )
    parser.add_argument(
        "--from-beginning", action="store_true", help="a new group starts at the oldest alert"
    )
    parser.add_argument("--limit", type=int, help="stop after this many alerts")


def _connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--target", default=default(None), help=f"host:port (env PREFLIGHT_TARGET; {DEFAULT_TARGET})"
    )
    parser.add_argument(
        "--token-file", default=default(None), help="file holding the bearer token (env PREFLIGHT_TOKEN)"
    )
    parser.add_argument(
        "--tls", action="store_true", default=default(False), help="use TLS with the system's CAs"
    )
    parser.add_argument("--ca-file", default=default(None), help="CA certificate to trust (PEM); implies TLS")
    parser.add_argument("--cert-file", default=default(None), help="client certificate for mTLS (PEM)")
    parser.add_argument("--key-file", default=default(None), help="client private key for mTLS (PEM)")
    parser.add_argument("--timeout", type=float, default=default(10.0), help="seconds per call (default 10)")
    parser.add_argument("--json", action="store_true", default=default(False), help="print JSON")


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    stdout, stderr = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        if args.command == "alert":
            return _follow(args, _Printer(stdout, stderr, args.json))
        with _client(args) as client:
            return _COMMANDS[args.command](client, args, _Printer(stdout, stderr, args.json))
    except ManifestError as exc:
        print(f"preflight: manifest error: {exc}", file=stderr)
        return 2
    except UsageError as exc:
        print(f"preflight: {exc}", file=stderr)
        return 2
    except PreflightError as exc:
        print(f"preflight: {exc.code.name}: {exc.message}", file=stderr)
        for violation in exc.field_violations:
            print(f"  - {violation.field}: {violation.description}", file=stderr)
        # The hints are about the gRPC connection options, which `alert` does not use.
        hint = None if args.command == "alert" else _HINTS.get(exc.code.name)
        if hint:
            print(f"  ({hint})", file=stderr)
        return 1


_HINTS = {
    "UNAUTHENTICATED": "check PREFLIGHT_TOKEN or --token-file (missing, wrong, expired or revoked token?)",
    "UNAVAILABLE": "the service could not be reached: check --target / PREFLIGHT_TARGET and TLS options",
    "ALREADY_EXISTS": "give a new idempotency_key (or --idempotency-key) to submit a different request",
}


def _client(args: argparse.Namespace) -> Client:
    target = args.target or os.environ.get("PREFLIGHT_TARGET", DEFAULT_TARGET)
    token = _read(args.token_file).strip() if args.token_file else os.environ.get("PREFLIGHT_TOKEN")
    tls: bool | TLS = False
    if args.ca_file or args.cert_file or args.key_file:
        if bool(args.cert_file) != bool(args.key_file):
            raise UsageError("--cert-file and --key-file go together")
        tls = TLS(
            root_certificates=_read_bytes(args.ca_file) if args.ca_file else None,
            client_certificate=_read_bytes(args.cert_file) if args.cert_file else None,
            client_key=_read_bytes(args.key_file) if args.key_file else None,
        )
    elif args.tls:
        tls = True
    return Client(target, token=token or None, tls=tls, timeout=args.timeout)


def _subscription(args: argparse.Namespace) -> AlertSubscription:
    def setting(value: str | None, variable: str, default: str | None = None) -> str:
        found = value or os.environ.get(variable) or default
        if not found:
            raise UsageError(f"give --{_OPTION_OF[variable]} or set {variable}")
        return found

    sectors = args.sector if args.sector is not None else os.environ.get("PREFLIGHT_SECTORS", "").split(",")
    try:
        return AlertSubscription(
            bootstrap_servers=setting(args.bootstrap, "PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS"),
            organisation=setting(args.organisation, "PREFLIGHT_ORGANISATION"),
            password_file=setting(args.password_file, "PREFLIGHT_KAFKA_SASL_PASSWORD_FILE"),
            sectors=tuple(s.strip() for s in sectors if s.strip()),
            name=args.name,
            username=args.user or os.environ.get("PREFLIGHT_KAFKA_SASL_USERNAME", ""),
            security_protocol=setting(
                args.security_protocol, "PREFLIGHT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"
            ),
            ca_file=args.kafka_ca_file or os.environ.get("PREFLIGHT_KAFKA_SSL_CAFILE") or None,
            alerts_prefix=setting(args.alerts_prefix, "PREFLIGHT_TOPIC_ALERTS_PREFIX", DEFAULT_ALERTS_PREFIX),
            from_beginning=args.from_beginning,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


_OPTION_OF = {
    "PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS": "bootstrap",
    "PREFLIGHT_ORGANISATION": "organisation",
    "PREFLIGHT_KAFKA_SASL_PASSWORD_FILE": "password-file",
}


def _follow(args: argparse.Namespace, p: _Printer) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    subscription = _subscription(args)
    try:
        subscription.password()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    p.note(f"following {', '.join(subscription.topics())} as {subscription.principal()}")
    received = 0
    alerts = subscribe_alerts(subscription)
    try:
        for alert in alerts:
            p.message(alert.alert, partial(_describe_alert, alert))
            received += 1
            if received == args.limit:
                break
    except KeyboardInterrupt:
        pass
    finally:
        alerts.close()
    return 0


def _describe_alert(received: ReceivedAlert) -> str:
    a = received.alert
    tlp = common_pb2.Tlp.Name(a.tlp).removeprefix("TLP_").replace("_", "+")
    kind = events_pb2.AlertKind.Name(a.kind).removeprefix("ALERT_KIND_").lower()
    late = " (late)" if a.late else ""
    return f"{_when(a.fired_at)}  TLP:{tlp:<12} {a.severity:<8} {kind} {a.threshold}{late}  {a.title}"


def _read(path: str) -> str:
    return _read_bytes(path).decode()


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _time(value: str, option: str) -> datetime:
    try:
        return parse_time(value, option)
    except ManifestError as exc:
        raise UsageError(f"{option}: {exc.message}") from None


class _Printer:
    def __init__(self, out: TextIO, err: TextIO, as_json: bool) -> None:
        self.out, self.err, self.as_json = out, err, as_json

    def message(self, message: Message, text: Callable[[], str]) -> None:
        if self.as_json:
            print(
                json.dumps(MessageToDict(message, preserving_proto_field_name=True)),
                file=self.out,
                flush=True,
            )
        else:
            print(text(), file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self.err)


def _when(ts: Timestamp) -> str:
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _status(value: int) -> str:
    return intake_pb2.SubmissionStatus.Name(value).removeprefix("SUBMISSION_STATUS_")  # type: ignore[arg-type]


def _describe(s: intake_pb2.Submission) -> str:
    window_days = (s.access_window.end.ToDatetime() - s.access_window.start.ToDatetime()) / timedelta(days=1)
    if s.access.WhichOneof("kind") == "endpoint":
        e = s.access.endpoint
        access = f"endpoint {e.base_url} (model {e.model_name}; credential stored encrypted)"
    else:
        w = s.access.weights
        access = f"weights {w.artifact_uri} ({w.format}, sha256 {w.sha256[:12]}…)"
    rows = [
        ("submission", s.submission_id),
        ("status", _status(s.status)),
        ("model", f"{s.model.developer} / {s.model.name} {s.model.version}"),
        ("release", f"{_when(s.planned_release)} (review deadline, version {s.deadline_version})"),
        ("window", f"{_when(s.access_window.start)} → {_when(s.access_window.end)} ({window_days:.1f} days)"),
        ("access", access),
        ("contacts", ", ".join(f"{c.name} <{c.email}>" for c in s.contacts)),
        ("flags", ", ".join(s.flags) or "-"),
        ("received", f"{_when(s.received_at)} by {s.submitted_by}"),
    ]
    return "\n".join(f"{name:<11} {value}" for name, value in rows)


def _submit(client: Client, args: argparse.Namespace, p: _Printer) -> int:
    request = load_manifest(args.manifest)
    if args.idempotency_key:
        request.idempotency_key = args.idempotency_key
    response = client.submit(request)
    if response.replayed and not p.as_json:
        p.note("already submitted with this idempotency key: showing the first submission")
    p.message(response if p.as_json else response.submission, lambda: _describe(response.submission))
    return 0


def _show(client: Client, args: argparse.Namespace, p: _Printer) -> int:
    submission = client.get_submission(args.submission_id)
    p.message(submission, lambda: _describe(submission))
    return 0


def _list(client: Client, args: argparse.Namespace, p: _Printer) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    statuses = [intake_pb2.SubmissionStatus.Value(f"SUBMISSION_STATUS_{name}") for name in args.status]
    submissions = _take(
        client.iter_submissions(statuses=statuses, page_size=min(args.limit, 200)), args.limit
    )
    if p.as_json:
        for submission in submissions:
            p.message(submission, str)
        return 0
    print(f"{'SUBMISSION':<36}  {'STATUS':<13} {'RELEASE':<23} MODEL", file=p.out)
    for s in submissions:
        print(
            f"{s.submission_id:<36}  {_status(s.status):<13} {_when(s.planned_release):<23} "
            f"{s.model.developer}/{s.model.name} {s.model.version}",
            file=p.out,
        )
    return 0


def _take(items: Iterator[intake_pb2.Submission], limit: int) -> list[intake_pb2.Submission]:
    taken = []
    for item in items:
        taken.append(item)
        if len(taken) == limit:
            break
    return taken


def _watch(client: Client, args: argparse.Namespace, p: _Printer) -> int:
    for change in client.watch(args.submission_id):
        p.message(change, lambda change=change: f"{_when(change.changed_at)}  {_status(change.status)}")  # type: ignore[misc]
    return 0


def _update_release(client: Client, args: argparse.Namespace, p: _Printer) -> int:
    if (args.window_start is None) != (args.window_end is None):
        raise UsageError("--window-start and --window-end go together")
    window = None
    if args.window_start is not None:
        window = (_time(args.window_start, "--window-start"), _time(args.window_end, "--window-end"))
    submission = client.update_release_plan(
        args.submission_id, _time(args.release, "--release"), access_window=window, reason=args.reason
    )
    p.message(submission, lambda: _describe(submission))
    return 0


def _withdraw(client: Client, args: argparse.Namespace, p: _Printer) -> int:
    submission = client.withdraw(args.submission_id, reason=args.reason)
    p.message(submission, lambda: _describe(submission))
    return 0


def _token(client: Client, args: argparse.Namespace, p: _Printer) -> int:
    if args.token_command == "revoke":  # noqa: S105 - a subcommand name
        client.revoke_token(args.token_id)
        p.note(f"revoked {args.token_id}")
        return 0
    expires = datetime.now(UTC) + timedelta(days=args.expires_in_days) if args.expires_in_days else None
    issued = client.create_token(
        principal_id=args.principal_id,
        role=identity_pb2.Role.Value(f"ROLE_{args.role.upper()}"),
        organisation=args.organisation,
        sectors=args.sector,
        expires_at=expires,
        description=args.description,
    )
    if p.as_json:
        p.message(issued, str)
        return 0
    p.note(
        f"token id:   {issued.token_id}\n"
        f"expires at: {_when(issued.expires_at)}\n"
        "the token (shown once; store it now):"
    )
    print(issued.token, file=p.out)
    return 0


_COMMANDS: dict[str, Callable[[Client, argparse.Namespace, _Printer], int]] = {
    "submit": _submit,
    "status": _show,
    "list": _list,
    "watch": _watch,
    "update-release": _update_release,
    "withdraw": _withdraw,
    "token": _token,
}


if __name__ == "__main__":
    sys.exit(main())
