"""Submissions (labs; reviewers see them all): the top-level intake verbs and the review queue."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from preflight.identity.v1 import identity_pb2
from preflight.intake.v1 import intake_pb2
from preflight.sdk.cli._core import (
    Choice,
    Context,
    UsageError,
    Verb,
    common_options,
    fields,
    limit_option,
    spelling,
    take,
    time_option,
    when,
)
from preflight.sdk.manifest import load_manifest

STATUS = Choice(intake_pb2.SubmissionStatus)
ROLE = Choice(identity_pb2.Role)
OPEN = [s for s in STATUS.choices if s not in ("closed", "withdrawn")]


def describe(s: intake_pb2.Submission) -> str:
    window_days = (s.access_window.end.ToDatetime() - s.access_window.start.ToDatetime()) / timedelta(days=1)
    if s.access.WhichOneof("kind") == "endpoint":
        e = s.access.endpoint
        access = f"endpoint {e.base_url} (model {e.model_name}; credential stored encrypted)"
    else:
        w = s.access.weights
        access = f"weights {w.artifact_uri} ({w.format}, sha256 {w.sha256[:12]}…)"
    return fields(
        [
            ("submission", s.submission_id),
            ("status", STATUS.name(s.status)),
            ("model", f"{s.model.developer} / {s.model.name} {s.model.version}"),
            ("release", f"{when(s.planned_release)} (review deadline, version {s.deadline_version})"),
            (
                "window",
                f"{when(s.access_window.start)} → {when(s.access_window.end)} ({window_days:.1f} days)",
            ),
            ("access", access),
            ("contacts", ", ".join(f"{c.name} <{c.email}>" for c in s.contacts)),
            ("flags", ", ".join(s.flags) or "-"),
            ("received", f"{when(s.received_at)} by {s.submitted_by}"),
        ]
    )


def _model(s: intake_pb2.Submission) -> str:
    return f"{s.model.developer}/{s.model.name} {s.model.version}"


def _submit(ctx: Context, args: argparse.Namespace) -> None:
    request = load_manifest(args.manifest)
    if args.idempotency_key:
        request.idempotency_key = args.idempotency_key
    response = ctx.preflight.intake.submit(request)
    if response.replayed and not ctx.as_json:
        ctx.note("already submitted with this idempotency key: showing the first submission")
    ctx.show(response if ctx.as_json else response.submission, lambda: describe(response.submission))


def _status(ctx: Context, args: argparse.Namespace) -> None:
    submission = ctx.preflight.intake.get_submission(args.submission_id)
    ctx.show(submission, lambda: describe(submission))


def _statuses(names: list[str]) -> list[intake_pb2.SubmissionStatus.ValueType]:
    return [STATUS.value(name) for name in names]


def _list(ctx: Context, args: argparse.Namespace) -> None:
    pages = ctx.preflight.intake.iter_submissions(
        statuses=_statuses(args.status), page_size=min(args.limit, 200)
    )
    ctx.table(
        take(pages, args.limit),
        [
            ("SUBMISSION", lambda s: s.submission_id),
            ("STATUS", lambda s: STATUS.name(s.status)),
            ("RELEASE", lambda s: when(s.planned_release)),
            ("MODEL", _model),
        ],
    )


def _left(s: intake_pb2.Submission, now: datetime) -> str:
    seconds = (s.planned_release.ToDatetime(tzinfo=UTC) - now).total_seconds()
    sign, seconds = ("-" if seconds < 0 else ""), abs(int(seconds))
    days, hours, minutes = seconds // 86400, seconds % 86400 // 3600, seconds % 3600 // 60
    return f"{sign}{days}d{hours:02d}h" if days else f"{sign}{hours}h{minutes:02d}m"


def _queue(ctx: Context, args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    statuses = _statuses(args.status or OPEN)
    queue = sorted(
        ctx.preflight.intake.iter_submissions(statuses=statuses, page_size=200),
        key=lambda s: (s.planned_release.ToDatetime(), s.submission_id),
    )
    ctx.table(
        queue[: args.limit],
        [
            ("SUBMISSION", lambda s: s.submission_id),
            ("DEADLINE", lambda s: when(s.planned_release)),
            ("LEFT", lambda s: _left(s, now)),
            ("STATUS", lambda s: STATUS.name(s.status)),
            ("MODEL", _model),
        ],
    )


def _watch(ctx: Context, args: argparse.Namespace) -> None:
    for change in ctx.preflight.intake.watch(args.submission_id):
        ctx.show(change, lambda change=change: f"{when(change.changed_at)}  {STATUS.name(change.status)}")  # type: ignore[misc]


def _update_release(ctx: Context, args: argparse.Namespace) -> None:
    if (args.window_start is None) != (args.window_end is None):
        raise UsageError("--window-start and --window-end go together")
    window = None
    if args.window_start is not None:
        window = (
            time_option(args.window_start, "--window-start"),
            time_option(args.window_end, "--window-end"),
        )
    submission = ctx.preflight.intake.update_release_plan(
        args.submission_id, time_option(args.release, "--release"), access_window=window, reason=args.reason
    )
    ctx.show(submission, lambda: describe(submission))


def _withdraw(ctx: Context, args: argparse.Namespace) -> None:
    submission = ctx.preflight.intake.withdraw(args.submission_id, reason=args.reason)
    ctx.show(submission, lambda: describe(submission))


def _token(ctx: Context, args: argparse.Namespace) -> None:
    if args.token_command == "revoke":  # noqa: S105 - a subcommand name
        ctx.preflight.intake.revoke_token(args.token_id)
        ctx.note(f"revoked {args.token_id}")
        return
    try:
        expires = datetime.now(UTC) + timedelta(days=args.expires_in_days) if args.expires_in_days else None
    except (ValueError, OverflowError):
        raise UsageError(f"--expires-in-days {args.expires_in_days}: a number of days from now") from None
    issued = ctx.preflight.intake.create_token(
        principal_id=args.principal_id,
        role=ROLE.value(args.role),
        organisation=args.organisation,
        sectors=args.sector,
        expires_at=expires,
        description=args.description,
    )
    if not ctx.as_json:
        ctx.note(
            f"token id:   {issued.token_id}\nexpires at: {when(issued.expires_at)}\n"
            "the token (shown once; store it now):"
        )
    ctx.show(issued, lambda: issued.token)


def _submit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path)
    parser.add_argument(
        "--idempotency-key", help="overrides the manifest's (default: derived from its content)"
    )


def _status_filter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status", action="append", choices=STATUS.choices, type=spelling, default=[], help="repeatable"
    )
    limit_option(parser)


def _submission_and_reason(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submission_id")
    parser.add_argument("--reason", default="")


def _update_arguments(parser: argparse.ArgumentParser) -> None:
    _submission_and_reason(parser)
    parser.add_argument("--release", required=True, help="new planned release: RFC 3339 time or +Nd/+Nh/+Nm")
    parser.add_argument("--window-start", help="new access window start (with --window-end)")
    parser.add_argument("--window-end", help="new access window end (with --window-start)")


def _token_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="issue a token; it is printed once", parents=[common_options()]
    )
    create.add_argument("--principal-id", required=True)
    create.add_argument("--role", required=True, choices=ROLE.choices, type=spelling)
    create.add_argument("--organisation", required=True)
    create.add_argument("--sector", action="append", default=[], help="an operator's sector (repeatable)")
    create.add_argument("--expires-in-days", type=float, help="default: the server's token lifetime")
    create.add_argument("--description", default="")
    actions.add_parser("revoke", help="revoke a token by its id", parents=[common_options()]).add_argument(
        "token_id"
    )


VERBS = (
    Verb(
        "submit",
        "submit the model version described by a manifest (YAML)",
        "preflight submit model.yaml",
        _submit,
        _submit_arguments,
    ),
    Verb(
        "status",
        "show one submission",
        "preflight status SUBMISSION_ID",
        _status,
        lambda p: p.add_argument("submission_id"),
    ),
    Verb(
        "list",
        "list the submissions you may see, newest first",
        "preflight list --status benchmarking",
        _list,
        _status_filter,
    ),
    Verb(
        "queue",
        "the open submissions, soonest review deadline first, with the time left (reviewers)",
        "preflight queue --limit 20",
        _queue,
        _status_filter,
    ),
    Verb(
        "watch",
        "follow a submission's status until it is closed or withdrawn",
        "preflight watch SUBMISSION_ID",
        _watch,
        lambda p: p.add_argument("submission_id"),
    ),
    Verb(
        "update-release",
        "move the planned release (and the access window)",
        "preflight update-release SUBMISSION_ID --release +10d",
        _update_release,
        _update_arguments,
    ),
    Verb(
        "withdraw",
        "withdraw a submission",
        "preflight withdraw SUBMISSION_ID --reason 'release cancelled'",
        _withdraw,
        _submission_and_reason,
    ),
    Verb(
        "token",
        "issue or revoke bearer tokens (admin)",
        "preflight token create --principal-id alice --role reviewer --organisation caisi",
        _token,
        _token_arguments,
    ),
)
