"""`preflight alert` and `preflight silence`: the notifier's alerts (operators see their own
organisation's and sectors', reviewers the review alerts) and the silences that mute deliveries."""

from __future__ import annotations

import argparse
import os

from preflight.common.v1 import common_pb2
from preflight.notifier.v1 import events_pb2, notifier_pb2
from preflight.sdk.alerts import AlertSubscription, subscribe_alerts
from preflight.sdk.cli._core import (
    Choice,
    Context,
    Noun,
    UsageError,
    Verb,
    count,
    fields,
    limit_option,
    spelling,
    take,
    time_option,
    when,
)
from preflight.sdk.naming import DEFAULT_ALERTS_PREFIX

KIND = Choice(events_pb2.AlertKind)
TLP = Choice(common_pb2.Tlp)
SILENCE = Choice(notifier_pb2.SilenceState)
OPERATORS = {
    "=": notifier_pb2.MATCH_OPERATOR_EQUAL,
    "!=": notifier_pb2.MATCH_OPERATOR_NOT_EQUAL,
    "=~": notifier_pb2.MATCH_OPERATOR_REGEX,
    "!~": notifier_pb2.MATCH_OPERATOR_NOT_REGEX,
}
SPELLING = {value: spelling for spelling, value in OPERATORS.items()}


def _line(a: events_pb2.Alert) -> str:
    late = " (late)" if a.late else ""
    kind = KIND.name(a.kind).lower()
    return (
        f"{when(a.fired_at)}  TLP:{TLP.name(a.tlp):<12} {a.severity:<8} {kind} {a.threshold}{late}  {a.title}"
    )


def _list(ctx: Context, args: argparse.Namespace) -> None:
    alerts = ctx.preflight.notifier.iter_alerts(
        kind=KIND.value(args.kind),
        subject_id=args.subject or "",
        unacknowledged_only=args.unacknowledged,
    )
    ctx.table(
        take(alerts, args.limit),
        [
            ("ALERT", lambda r: r.alert.alert_id),
            ("FIRED", lambda r: when(r.alert.fired_at)),
            ("KIND", lambda r: KIND.name(r.alert.kind)),
            ("SEVERITY", lambda r: r.alert.severity),
            ("ACK", lambda r: "yes" if r.acknowledged else "no"),
            ("TITLE", lambda r: r.alert.title),
        ],
    )


def _ack(ctx: Context, args: argparse.Namespace) -> None:
    record = ctx.preflight.notifier.acknowledge_alert(args.alert_id, comment=args.comment)
    ctx.show(
        record,
        lambda: f"acknowledged {args.alert_id} ({record.acknowledged_by}, {when(record.acknowledged_at)})",
    )


def _follow(ctx: Context, args: argparse.Namespace) -> None:
    if args.bootstrap or args.organisation:
        return _follow_bus(ctx, args)
    kinds = [KIND.value(k) for k in args.kind]
    stream = ctx.preflight.notifier.subscribe_alerts(kinds=kinds, after_sequence=args.after)
    _print_until(ctx, args, ((r, r.alert) for r in stream))
    return None


def _print_until(ctx: Context, args: argparse.Namespace, items: object) -> None:
    received = 0
    try:
        for message, alert in items:  # type: ignore[attr-defined]
            ctx.show(message, lambda alert=alert: _line(alert))  # type: ignore[misc]
            received += 1
            if received == args.limit:
                break
    except KeyboardInterrupt:
        pass
    finally:
        items.close()  # type: ignore[attr-defined]


def _follow_bus(ctx: Context, args: argparse.Namespace) -> None:
    ctx.hints = False
    subscription = _subscription(args)
    try:
        subscription.password()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    ctx.note(f"following {', '.join(subscription.topics())} as {subscription.principal()}")
    _print_until(ctx, args, ((r.alert, r.alert) for r in subscribe_alerts(subscription)))


_OPTION_OF = {
    "PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS": "bootstrap",
    "PREFLIGHT_ORGANISATION": "organisation",
    "PREFLIGHT_KAFKA_SASL_PASSWORD_FILE": "password-file",
}


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


def _matcher(text: str) -> notifier_pb2.Matcher:
    for operator in ("!=", "=~", "!~", "="):
        label, found, value = text.partition(operator)
        if found and label:
            return notifier_pb2.Matcher(label=label, operator=OPERATORS[operator], value=value)
    raise UsageError(f"--match {text!r}: LABEL=VALUE, LABEL!=VALUE, LABEL=~REGEX or LABEL!~REGEX")


def _matches(s: notifier_pb2.Silence) -> str:
    return " ".join(f"{m.label}{SPELLING.get(m.operator, '?')}{m.value}" for m in s.matchers)


def describe_silence(s: notifier_pb2.Silence) -> str:
    return fields(
        [
            ("silence", s.silence_id),
            ("state", SILENCE.name(s.state)),
            ("matches", _matches(s)),
            ("from", when(s.starts_at)),
            ("until", when(s.ends_at)),
            ("by", f"{s.created_by} ({s.organisation})"),
            ("comment", s.comment or "-"),
        ]
    )


def _silence_create(ctx: Context, args: argparse.Namespace) -> None:
    silence = ctx.preflight.notifier.create_silence(
        [_matcher(m) for m in args.match],
        time_option(args.until, "--until"),
        starts_at=time_option(args.start, "--start") if args.start else None,
        comment=args.comment,
    )
    ctx.show(silence, lambda: describe_silence(silence))


def _silence_list(ctx: Context, args: argparse.Namespace) -> None:
    ctx.table(
        ctx.preflight.notifier.list_silences(include_expired=args.all),
        [
            ("SILENCE", lambda s: s.silence_id),
            ("STATE", lambda s: SILENCE.name(s.state)),
            ("UNTIL", lambda s: when(s.ends_at)),
            ("MATCHES", _matches),
        ],
    )


def _silence_expire(ctx: Context, args: argparse.Namespace) -> None:
    silence = ctx.preflight.notifier.expire_silence(args.silence_id)
    ctx.show(silence, lambda: describe_silence(silence))


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=KIND.choices, type=spelling)
    parser.add_argument("--subject", metavar="ID", help="only alerts about this submission or finding")
    parser.add_argument("--unacknowledged", action="store_true", help="only those not acknowledged yet")
    limit_option(parser)


def _ack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("alert_id")
    parser.add_argument("--comment", default="")


def _follow_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind", action="append", default=[], choices=KIND.choices, type=spelling, help="repeatable"
    )
    parser.add_argument("--after", type=int, metavar="SEQUENCE", help="continue after this alert's sequence")
    parser.add_argument("--limit", type=count, help="stop after this many alerts")
    bus = parser.add_argument_group(
        "from the event bus (Kafka) instead of the notifier; env PREFLIGHT_KAFKA_*"
    )
    bus.add_argument(
        "--bootstrap", help="Kafka host:port[,host:port] (env PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS)"
    )
    bus.add_argument("--organisation", help="your organisation (env PREFLIGHT_ORGANISATION)")
    bus.add_argument(
        "--sector", action="append", help="one of your sectors, repeatable (env PREFLIGHT_SECTORS)"
    )
    bus.add_argument("--user", help="SASL user (default operator-ORGANISATION)")
    bus.add_argument("--password-file", help="file holding the SASL password")
    bus.add_argument("--security-protocol", help="SASL_SSL (default), SASL_PLAINTEXT…")
    bus.add_argument("--kafka-ca-file", help="CA certificate of the brokers (PEM)")
    bus.add_argument("--alerts-prefix", help=f"alert topic prefix ({DEFAULT_ALERTS_PREFIX})")
    bus.add_argument("--name", default="alerts", help="consumer group: operator-ORGANISATION.NAME")
    bus.add_argument("--from-beginning", action="store_true", help="a new group starts at the oldest alert")


def _create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--match", action="append", required=True, metavar="LABEL=VALUE", help="repeatable; also != =~ !~"
    )
    parser.add_argument("--until", required=True, help="RFC 3339 time or +Nd/+Nh/+Nm")
    parser.add_argument("--start", help="default now")
    parser.add_argument("--comment", default="")


ALERTS = Noun(
    "alert",
    "alerts you may see",
    (
        Verb("list", "alerts, newest first", "preflight alert list --unacknowledged", _list, _list_arguments),
        Verb(
            "ack",
            "record that your organisation has seen an alert",
            "preflight alert ack ALERT_ID",
            _ack,
            _ack_arguments,
        ),
        Verb(
            "follow",
            "print alerts as they fire, reconnecting without a gap (Ctrl-C stops)",
            "preflight alert follow --kind review-deadline",
            _follow,
            _follow_arguments,
        ),
    ),
)
SILENCES = Noun(
    "silence",
    "mute deliveries of matching alerts for a while",
    (
        Verb(
            "create",
            "silence matching alerts",
            "preflight silence create --match subject_id=SUBMISSION_ID --until +2h",
            _silence_create,
            _create_arguments,
        ),
        Verb(
            "list",
            "the silences you may manage",
            "preflight silence list --all",
            _silence_list,
            lambda p: p.add_argument("--all", action="store_true", help="expired ones too"),
        ),
        Verb(
            "expire",
            "end a silence now",
            "preflight silence expire SILENCE_ID",
            _silence_expire,
            lambda p: p.add_argument("silence_id"),
        ),
    ),
)
