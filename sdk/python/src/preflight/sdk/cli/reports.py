"""`preflight report`: signed review reports (labs read their own; reviewers note, sign off, reissue)."""

from __future__ import annotations

import argparse

from google.protobuf.json_format import MessageToJson, Parse, ParseError
from preflight.clearinghouse.v1 import clearinghouse_pb2
from preflight.sdk.cli._core import (
    Context,
    Noun,
    Refused,
    UsageError,
    Verb,
    fields,
    limit_option,
    read_bytes,
    take,
    when,
    write_bytes,
)
from preflight.sdk.reports import ReportVerificationError, verify_report


def describe(r: clearinghouse_pb2.ReviewReport) -> str:
    rows = [
        ("report", r.report_id),
        ("submission", r.submission_id),
        ("version", f"{r.version}{' (superseded)' if r.superseded else ''}"),
        ("organisation", r.organisation),
        ("tier", f"{r.tier} (policy {r.policy_id} {r.policy_version})"),
        ("issued", when(r.issued_at)),
        ("signed", f"key {r.signing_key_id}, sha256 {r.digest[:16]}…"),
        *((f"score {s.capability}", f"{s.score:.3f} (CI {s.ci_low:.3f}-{s.ci_high:.3f})") for s in r.scores),
        *((f"failed {f.suite_id}", f.message or str(f.reason)) for f in r.failed_suites),
        ("unassessed", ", ".join(r.unassessed_capabilities) or "-"),
        *((f"sign-off {s.reviewer_id}", when(s.signed_off_at)) for s in r.sign_offs),
        *((f"note {n.author_id}", n.text) for n in r.notes),
    ]
    return fields(rows)


def _report(ctx: Context, args: argparse.Namespace) -> clearinghouse_pb2.ReviewReport:
    if bool(args.report_id) == bool(args.submission):
        raise UsageError("give a REPORT_ID or --submission SUBMISSION_ID")
    return ctx.preflight.clearinghouse.get_report(
        args.report_id or "", submission_id=args.submission or "", version=args.version
    )


def _list(ctx: Context, args: argparse.Namespace) -> None:
    reports = ctx.preflight.clearinghouse.iter_reports(
        all_versions=args.all_versions, page_size=min(args.limit, 200)
    )
    ctx.table(
        take(reports, args.limit),
        [
            ("REPORT", lambda r: r.report_id),
            ("SUBMISSION", lambda r: r.submission_id),
            ("VERSION", lambda r: str(r.version)),
            ("TIER", lambda r: r.tier),
            ("ISSUED", lambda r: when(r.issued_at)),
            ("SIGN-OFFS", lambda r: str(len(r.sign_offs))),
        ],
    )


def _show(ctx: Context, args: argparse.Namespace) -> None:
    report = _report(ctx, args)
    ctx.show(report, lambda: describe(report))


def _download(ctx: Context, args: argparse.Namespace) -> None:
    document = MessageToJson(_report(ctx, args), preserving_proto_field_name=True, sort_keys=True) + "\n"
    if args.output == "-":
        ctx.out.write(document)
        return
    write_bytes(args.output, document.encode())
    ctx.note(f"wrote {args.output}")


def _verify(ctx: Context, args: argparse.Namespace) -> int:
    if args.file:
        if args.report_id or args.submission:
            raise UsageError("give a downloaded --file, or a REPORT_ID or --submission to fetch, not both")
        try:
            report = Parse(read_bytes(args.file), clearinghouse_pb2.ReviewReport())
        except (ParseError, UnicodeDecodeError) as exc:
            raise UsageError(f"{args.file} is not a downloaded report: {exc}") from None
    else:
        report = _report(ctx, args)
    key = ctx.preflight.clearinghouse.get_signing_key(report.signing_key_id)
    result = clearinghouse_pb2.GetSigningKeyResponse(key_id=key.key_id)
    try:
        verify_report(report, key)
    except ReportVerificationError as exc:
        raise Refused(f"report {report.report_id} does NOT verify: {exc}") from None
    ctx.show(
        result,
        lambda: f"report {report.report_id} (version {report.version}) verifies: signed by key {key.key_id}",
    )
    return 0


def _note(ctx: Context, args: argparse.Namespace) -> None:
    note = ctx.preflight.clearinghouse.add_report_note(args.report_id, args.text)
    ctx.show(note, lambda: f"noted on {args.report_id} by {note.author_id} at {when(note.created_at)}")


def _sign_off(ctx: Context, args: argparse.Namespace) -> None:
    sign_off = ctx.preflight.clearinghouse.sign_off_report(args.report_id, comment=args.comment)
    ctx.show(
        sign_off,
        lambda: f"signed off {args.report_id} as {sign_off.reviewer_id} at {when(sign_off.signed_off_at)}",
    )


def _reissue(ctx: Context, args: argparse.Namespace) -> None:
    report = ctx.preflight.clearinghouse.reissue_report(args.submission_id, reason=args.reason)
    ctx.show(report, lambda: describe(report))


def _which(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report_id", nargs="?", metavar="REPORT_ID")
    parser.add_argument("--submission", metavar="SUBMISSION_ID", help="the latest report of this submission")
    parser.add_argument(
        "--version", type=int, default=0, help="with --submission: this version (default latest)"
    )


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all-versions", action="store_true", help="every version, not only the latest")
    limit_option(parser)


def _download_arguments(parser: argparse.ArgumentParser) -> None:
    _which(parser)
    parser.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    _which(parser)
    parser.add_argument("--file", help="a report written by `preflight report download` (- for stdin)")


def _note_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report_id")
    parser.add_argument("--text", required=True)


def _sign_off_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report_id")
    parser.add_argument("--comment", default="")


def _reissue_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submission_id")
    parser.add_argument("--reason", default="")


NOUN = Noun(
    "report",
    "signed review reports",
    (
        Verb(
            "list",
            "the reports you may see, newest submission first",
            "preflight report list",
            _list,
            _list_arguments,
        ),
        Verb("show", "one report version", "preflight report show --submission SUBMISSION_ID", _show, _which),
        Verb(
            "download",
            "the signed report as JSON",
            "preflight report download --submission SUBMISSION_ID -o report.json",
            _download,
            _download_arguments,
        ),
        Verb(
            "verify",
            "check a report's Ed25519 signature with the clearinghouse's key (exit 1 if it does not verify)",
            "preflight report verify --file report.json",
            _verify,
            _verify_arguments,
        ),
        Verb(
            "note",
            "add a reviewer's note to a report version",
            "preflight report note REPORT_ID --text 'rerun ctf'",
            _note,
            _note_arguments,
        ),
        Verb(
            "sign-off",
            "sign off a report version (reviewers)",
            "preflight report sign-off REPORT_ID --comment ok",
            _sign_off,
            _sign_off_arguments,
        ),
        Verb(
            "reissue",
            "recompute a submission's report under the current policy as a new version",
            "preflight report reissue SUBMISSION_ID --reason 'policy 2.1'",
            _reissue,
            _reissue_arguments,
        ),
    ),
)
