"""`preflight finding`: the findings registry (reviewers triage and share; operators see what is
shared with them and report their patch status; the API decides who sees what)."""

from __future__ import annotations

import argparse
import hashlib
import mimetypes
from pathlib import Path

import yaml
from google.protobuf.json_format import ParseDict, ParseError
from preflight.clearinghouse.v1 import clearinghouse_pb2, events_pb2
from preflight.common.v1 import common_pb2
from preflight.sdk._calls import Assessment, Transition
from preflight.sdk.cli._core import (
    Choice,
    Context,
    Noun,
    UsageError,
    Verb,
    fields,
    limit_option,
    read_bytes,
    spelling,
    take,
    time_option,
    when,
    write_bytes,
)

STATE = Choice(events_pb2.FindingState)
EMBARGO = Choice(events_pb2.EmbargoState)
SEVERITY = Choice(clearinghouse_pb2.Severity)
TLP = Choice(common_pb2.Tlp)
LINK = Choice(clearinghouse_pb2.LinkKind)
PATCH = Choice(clearinghouse_pb2.PatchStatus)
FORMAT = Choice(clearinghouse_pb2.ExportFormat)
EXPLOITATION = Choice(clearinghouse_pb2.SsvcExploitation)
AUTOMATABLE = Choice(clearinghouse_pb2.SsvcAutomatable)
TECHNICAL_IMPACT = Choice(clearinghouse_pb2.SsvcTechnicalImpact)
MISSION_WELL_BEING = Choice(clearinghouse_pb2.SsvcMissionWellBeing)
OUTCOME = Choice(clearinghouse_pb2.SsvcOutcome)
VISIBILITY = Choice(clearinghouse_pb2.CommentVisibility)
JUSTIFICATION = Choice(clearinghouse_pb2.VexJustification)


def _ssvc(decision: clearinghouse_pb2.SsvcDecision) -> str:
    if not decision.outcome:
        return "-"
    points = (
        f"exploitation {EXPLOITATION.name(decision.exploitation)}, "
        f"automatable {AUTOMATABLE.name(decision.automatable)}, "
        f"technical impact {TECHNICAL_IMPACT.name(decision.technical_impact)}, "
        f"mission and well-being {MISSION_WELL_BEING.name(decision.mission_well_being)}"
    )
    return f"{OUTCOME.name(decision.outcome)} ({points}; {when(decision.decided_at)})"


def _score(vector: str, score: float) -> str:
    return f"{score:.1f}" if vector else "-"


def describe(f: clearinghouse_pb2.Finding) -> str:
    rows = [
        ("finding", f.finding_id),
        ("title", f.title),
        (
            "state",
            f"{STATE.name(f.state)} (embargo {EMBARGO.name(f.embargo_state)}, ends {when(f.embargo_end)})",
        ),
        (
            "severity",
            f"{SEVERITY.name(f.severity)} (CVSS 3.1 {_score(f.cvss_v3_vector, f.cvss_v3_score)}, "
            f"4.0 {_score(f.cvss_v4_vector, f.cvss_v4_score)})",
        ),
        (
            "sharing",
            f"TLP:{TLP.name(f.tlp)} to {', '.join([*f.audience.organisations, *f.audience.sectors]) or 'nobody'}",  # noqa: E501
        ),
        ("cwe", ", ".join(f.cwe_ids) or "-"),
        ("affected", ", ".join(p.purl or p.cpe for p in f.affected_products) or "-"),
        ("aliases", ", ".join(f.aliases) or "-"),
        ("link", f"{LINK.name(f.link.kind)} {f.link.target_finding_id}" if f.link.kind else "-"),
        ("assignee", f.assignee or "-"),
        ("ssvc", _ssvc(f.ssvc)),
        ("remediation", when(f.remediation_due)),
        *((f"patch {p.organisation}", f"{PATCH.name(p.status)} {p.note}".rstrip()) for p in f.patch_statuses),
        ("revision", f"{f.revision} (created {when(f.created_at)}, updated {when(f.updated_at)})"),
    ]
    return fields(rows)


def _one(ctx: Context, finding: clearinghouse_pb2.Finding) -> None:
    ctx.show(finding, lambda: describe(finding))


def _report(ctx: Context, args: argparse.Namespace) -> None:
    try:
        data = yaml.safe_load(read_bytes(args.file))
        if not isinstance(data, dict):
            raise ParseError("its top level is not a mapping of the request's fields")
        request = ParseDict(data, clearinghouse_pb2.ReportFindingRequest())
    except (yaml.YAMLError, ParseError) as exc:
        raise UsageError(
            f"{args.file}: not a finding (ReportFindingRequest as YAML or JSON): {exc}"
        ) from None
    response = ctx.preflight.clearinghouse.report_finding(request)
    ctx.show(response, lambda: describe(response.finding))


def _list(ctx: Context, args: argparse.Namespace) -> None:
    selected = clearinghouse_pb2.FindingFilter(
        sector=args.sector or "",
        states=[STATE.value(s) for s in args.state],
        severities=[SEVERITY.value(s) for s in args.severity],
        assignee=args.assignee or "",
    )
    findings = ctx.preflight.clearinghouse.iter_findings(selected, page_size=min(args.limit, 200))
    ctx.table(
        take(findings, args.limit),
        [
            ("FINDING", lambda f: f.finding_id),
            ("STATE", lambda f: STATE.name(f.state)),
            ("SEVERITY", lambda f: SEVERITY.name(f.severity)),
            ("TLP", lambda f: TLP.name(f.tlp)),
            ("TITLE", lambda f: f.title),
        ],
    )


def _show(ctx: Context, args: argparse.Namespace) -> None:
    _one(ctx, ctx.preflight.clearinghouse.get_finding(args.finding_id))


def _actor(entry: clearinghouse_pb2.FindingHistoryEntry) -> str:
    return f"{entry.actor_role} {entry.actor_id}" if entry.actor_id else entry.actor_role


def _history(ctx: Context, args: argparse.Namespace) -> None:
    history = ctx.preflight.clearinghouse.iter_finding_history
    entries = history(args.finding_id, page_size=min(args.limit, 200))
    ctx.table(
        take(entries, args.limit),
        [
            ("TIME", lambda e: when(e.time)),
            ("ACTION", lambda e: e.action.removeprefix("finding.")),
            ("ACTOR", _actor),
            ("CHANGED", lambda e: ", ".join(e.changed) or "-"),
        ],
    )


def _triage(ctx: Context, args: argparse.Namespace) -> None:
    if bool(args.state) == bool(args.embargo):
        raise UsageError("give --state or --embargo")
    target = Transition(
        state=STATE.value(args.state),
        embargo_state=EMBARGO.value(args.embargo),
        embargo_end=time_option(args.embargo_end, "--embargo-end") if args.embargo_end else None,
    )
    _one(
        ctx,
        ctx.preflight.clearinghouse.transition_finding(
            args.finding_id, target, reason=args.reason, expected_revision=args.expected_revision
        ),
    )


def _assess(ctx: Context, args: argparse.Namespace) -> None:
    assessment = Assessment(
        cvss_v3_vector=args.cvss_v3 or "",
        cvss_v4_vector=args.cvss_v4 or "",
        cwe_ids=args.cwe,
        remediation_due=time_option(args.remediation_due, "--remediation-due")
        if args.remediation_due
        else None,
    )
    _one(
        ctx,
        ctx.preflight.clearinghouse.update_finding_assessment(
            args.finding_id, assessment, reason=args.reason, expected_revision=args.expected_revision
        ),
    )


def _share(ctx: Context, args: argparse.Namespace) -> None:
    audience = common_pb2.Audience(organisations=args.organisation, sectors=args.sector)
    _one(
        ctx,
        ctx.preflight.clearinghouse.set_finding_sharing(
            args.finding_id,
            TLP.value(args.tlp),
            audience,
            reason=args.reason,
            expected_revision=args.expected_revision,
        ),
    )


def _author(item: clearinghouse_pb2.FindingComment | clearinghouse_pb2.FindingAttachment) -> str:
    """Who wrote a comment or added an attachment: role, organisation and id, as far as shown."""
    return " ".join(part for part in (item.author_role, item.author_organisation, item.author_id) if part)


def _describe_comment(c: clearinghouse_pb2.FindingComment) -> str:
    return fields(
        [
            ("comment", c.comment_id),
            ("author", _author(c)),
            ("visibility", VISIBILITY.name(c.visibility)),
            ("revision", f"{c.revision} (written {when(c.created_at)}, latest {when(c.updated_at)})"),
            ("body", c.body),
        ]
    )


def _comments(ctx: Context, args: argparse.Namespace) -> None:
    comments = ctx.preflight.clearinghouse.iter_finding_comments(
        args.finding_id, page_size=min(args.limit, 200)
    )
    ctx.table(
        take(comments, args.limit),
        [
            ("COMMENT", lambda c: c.comment_id),
            ("WRITTEN", lambda c: when(c.created_at)),
            ("AUTHOR", lambda c: c.author_role),
            ("VISIBILITY", lambda c: VISIBILITY.name(c.visibility)),
            ("REV", lambda c: str(c.revision)),
            ("BODY", lambda c: c.body.splitlines()[0] if c.body else ""),
        ],
    )


def _comment(ctx: Context, args: argparse.Namespace) -> None:
    comment = ctx.preflight.clearinghouse.add_finding_comment(
        args.finding_id, args.body, VISIBILITY.value(args.visibility)
    )
    ctx.show(comment, lambda: _describe_comment(comment))


def _edit_comment(ctx: Context, args: argparse.Namespace) -> None:
    comment = ctx.preflight.clearinghouse.edit_finding_comment(
        args.finding_id, args.comment_id, args.body, expected_revision=args.expected_revision
    )
    ctx.show(comment, lambda: _describe_comment(comment))


def _assign(ctx: Context, args: argparse.Namespace) -> None:
    _one(
        ctx,
        ctx.preflight.clearinghouse.assign_finding(
            args.finding_id,
            "" if args.unassign else args.to,
            reason=args.reason,
            expected_revision=args.expected_revision,
        ),
    )


def _decide_ssvc(ctx: Context, args: argparse.Namespace) -> None:
    _one(
        ctx,
        ctx.preflight.clearinghouse.set_finding_ssvc(
            args.finding_id,
            exploitation=EXPLOITATION.value(args.exploitation),
            automatable=AUTOMATABLE.value(args.automatable),
            technical_impact=TECHNICAL_IMPACT.value(args.technical_impact),
            mission_well_being=MISSION_WELL_BEING.value(args.mission_well_being),
            reason=args.reason,
            expected_revision=args.expected_revision,
        ),
    )


def _link(ctx: Context, args: argparse.Namespace) -> None:
    _one(
        ctx,
        ctx.preflight.clearinghouse.link_finding(
            args.finding_id, LINK.value(args.kind), args.target_finding_id, reason=args.reason
        ),
    )


def _patch_status(ctx: Context, args: argparse.Namespace) -> None:
    _one(
        ctx,
        ctx.preflight.clearinghouse.set_patch_status(
            args.finding_id,
            PATCH.value(args.status),
            note=args.note,
            justification=JUSTIFICATION.value(args.justification),
        ),
    )


def _export(ctx: Context, args: argparse.Namespace) -> None:
    exported = ctx.preflight.clearinghouse.export_finding(args.finding_id, FORMAT.value(args.format))
    if ctx.as_json:
        ctx.show(exported, str)
    elif args.output == "-":
        ctx.out.write(exported.document.decode())
    else:
        write_bytes(args.output, exported.document)
        ctx.note(f"wrote {args.output} ({exported.media_type})")


def _finding(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("finding_id")


def _change(parser: argparse.ArgumentParser) -> None:
    _finding(parser)
    parser.add_argument("--reason", default="", help="recorded in the audit log")
    parser.add_argument(
        "--expected-revision", type=int, default=0, help="refuse if the finding has changed since"
    )


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file", required=True, help="the finding: a ReportFindingRequest as YAML or JSON (- for stdin)"
    )


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state", action="append", default=[], choices=STATE.choices, type=spelling, help="repeatable"
    )
    parser.add_argument(
        "--severity", action="append", default=[], choices=SEVERITY.choices, type=spelling, help="repeatable"
    )
    parser.add_argument("--sector", help="only findings shared with this sector")
    parser.add_argument("--assignee", help="only findings assigned to this reviewer principal (reviewers)")
    limit_option(parser)


def _history_arguments(parser: argparse.ArgumentParser) -> None:
    _finding(parser)
    limit_option(parser)


def _triage_arguments(parser: argparse.ArgumentParser) -> None:
    _change(parser)
    parser.add_argument("--state", choices=STATE.choices, type=spelling, help="the new disclosure state")
    parser.add_argument("--embargo", choices=EMBARGO.choices, type=spelling, help="or the new embargo state")
    parser.add_argument("--embargo-end", help="when proposing an embargo: RFC 3339 time or +Nd")


def _assess_arguments(parser: argparse.ArgumentParser) -> None:
    _change(parser)
    parser.add_argument("--cvss-v3", help="CVSS 3.1 vector")
    parser.add_argument("--cvss-v4", help="CVSS 4.0 vector")
    parser.add_argument("--cwe", action="append", default=[], help="CWE id (repeatable; replaces the set)")
    parser.add_argument("--remediation-due", help="RFC 3339 time or +Nd")


def _describe_attachment(a: clearinghouse_pb2.FindingAttachment) -> str:
    return fields(
        [
            ("attachment", a.attachment_id),
            ("name", a.name),
            ("content type", a.content_type),
            ("size", f"{a.size} bytes"),
            ("sha256", a.sha256),
            ("author", _author(a)),
            ("visibility", VISIBILITY.name(a.visibility)),
            ("added", when(a.created_at)),
        ]
    )


def _attachments(ctx: Context, args: argparse.Namespace) -> None:
    attachments = ctx.preflight.clearinghouse.iter_finding_attachments(
        args.finding_id, page_size=min(args.limit, 200)
    )
    ctx.table(
        take(attachments, args.limit),
        [
            ("ATTACHMENT", lambda a: a.attachment_id),
            ("ADDED", lambda a: when(a.created_at)),
            ("AUTHOR", lambda a: a.author_role),
            ("VISIBILITY", lambda a: VISIBILITY.name(a.visibility)),
            ("TYPE", lambda a: a.content_type),
            ("SIZE", lambda a: str(a.size)),
            ("NAME", lambda a: a.name),
        ],
    )


def _attach(ctx: Context, args: argparse.Namespace) -> None:
    content_type = args.content_type or mimetypes.guess_type(args.file)[0]
    if not content_type:
        raise UsageError(f"cannot tell the content type of {args.file}: give --content-type")
    attachment = ctx.preflight.clearinghouse.add_finding_attachment(
        args.finding_id,
        args.name or Path(args.file).name,
        content_type,
        read_bytes(args.file),
        VISIBILITY.value(args.visibility),
    )
    ctx.show(attachment, lambda: _describe_attachment(attachment))


def _attachment(ctx: Context, args: argparse.Namespace) -> None:
    fetched = ctx.preflight.clearinghouse.get_finding_attachment(args.finding_id, args.attachment_id)
    # The digest stated at upload is checked on the received bytes before anything is written.
    if hashlib.sha256(fetched.content).hexdigest() != fetched.attachment.sha256:
        raise UsageError(f"attachment {args.attachment_id}: the bytes received do not match its SHA-256")
    write_bytes(args.output, fetched.content)
    ctx.note(f"wrote {args.output} ({fetched.attachment.content_type}, sha256 {fetched.attachment.sha256})")
    ctx.show(fetched.attachment, lambda: _describe_attachment(fetched.attachment))


def _share_arguments(parser: argparse.ArgumentParser) -> None:
    _change(parser)
    parser.add_argument("--tlp", required=True, choices=TLP.choices, type=spelling)
    parser.add_argument("--organisation", action="append", default=[], help="repeatable")
    parser.add_argument("--sector", action="append", default=[], help="repeatable")


def _visibility(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--visibility",
        required=True,
        choices=VISIBILITY.choices,
        type=spelling,
        help="internal (reviewers) or audience (whoever may see the finding)",
    )


def _comment_arguments(parser: argparse.ArgumentParser) -> None:
    _finding(parser)
    parser.add_argument("--body", required=True, help="the comment's text")
    _visibility(parser)


def _edit_comment_arguments(parser: argparse.ArgumentParser) -> None:
    _finding(parser)
    parser.add_argument("comment_id")
    parser.add_argument("--body", required=True, help="the new text (the earlier revisions are kept)")
    parser.add_argument(
        "--expected-revision", type=int, default=0, help="refuse if the comment has changed since"
    )


def _attach_arguments(parser: argparse.ArgumentParser) -> None:
    _finding(parser)
    parser.add_argument("file", help="the evidence file (at most 3 MiB; - for standard input)")
    _visibility(parser)
    parser.add_argument(
        "--content-type",
        default="",
        help="text/plain, application/json, application/pdf, image/png, application/zip or "
        "application/vnd.tcpdump.pcap (default: from the file's extension)",
    )
    parser.add_argument("--name", default="", help="the name to keep (default: the file's)")


def _attachment_arguments(parser: argparse.ArgumentParser) -> None:
    _finding(parser)
    parser.add_argument("attachment_id")
    parser.add_argument("--output", "-o", required=True, help="file to write the attachment's bytes to")


def _assign_arguments(parser: argparse.ArgumentParser) -> None:
    _change(parser)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--to", metavar="PRINCIPAL_ID", help="the reviewer principal to assign it to")
    who.add_argument("--unassign", action="store_true", help="leave it unassigned")


def _ssvc_arguments(parser: argparse.ArgumentParser) -> None:
    _change(parser)
    parser.add_argument("--exploitation", required=True, choices=EXPLOITATION.choices, type=spelling)
    parser.add_argument("--automatable", required=True, choices=AUTOMATABLE.choices, type=spelling)
    parser.add_argument("--technical-impact", required=True, choices=TECHNICAL_IMPACT.choices, type=spelling)
    parser.add_argument(
        "--mission-well-being", required=True, choices=MISSION_WELL_BEING.choices, type=spelling
    )


def _link_arguments(parser: argparse.ArgumentParser) -> None:
    _finding(parser)
    parser.add_argument("--kind", required=True, choices=LINK.choices, type=spelling)
    parser.add_argument("--to", dest="target_finding_id", required=True, metavar="FINDING_ID")
    parser.add_argument("--reason", default="")


def _patch_arguments(parser: argparse.ArgumentParser) -> None:
    _finding(parser)
    parser.add_argument("--status", required=True, choices=PATCH.choices, type=spelling)
    parser.add_argument(
        "--justification",
        choices=JUSTIFICATION.choices,
        type=spelling,
        help="why you are not affected (VEX; with --status not-affected only)",
    )
    parser.add_argument("--note", default="")


def _import(ctx: Context, args: argparse.Namespace) -> None:
    response = ctx.preflight.clearinghouse.import_finding(read_bytes(args.file), FORMAT.value(args.format))
    ctx.show(response, lambda: describe(response.finding))


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the CSAF or OSV document (- for stdin)")
    parser.add_argument(
        "--format", required=True, choices=[c for c in FORMAT.choices if c != "stix"], type=spelling
    )


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    _finding(parser)
    parser.add_argument("--format", default="csaf", choices=FORMAT.choices, type=spelling)
    parser.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")


NOUN = Noun(
    "finding",
    "vulnerability findings (reviewers, operators, reporters)",
    (
        Verb(
            "report",
            "report a vulnerability",
            "preflight finding report --file finding.yaml",
            _report,
            _report_arguments,
        ),
        Verb(
            "list",
            "the findings you may see, oldest first",
            "preflight finding list --state validated",
            _list,
            _list_arguments,
        ),
        Verb("show", "one finding as you may see it", "preflight finding show FINDING_ID", _show, _finding),
        Verb(
            "history",
            "a finding's changes, oldest first, as your view of it allows (actors by role unless you review)",
            "preflight finding history FINDING_ID --limit 20",
            _history,
            _history_arguments,
        ),
        Verb(
            "triage",
            "move a finding through disclosure or embargo (reviewers)",
            "preflight finding triage FINDING_ID --state triaged",
            _triage,
            _triage_arguments,
        ),
        Verb(
            "assess",
            "change CVSS vectors, CWE ids or the remediation date (reviewers)",
            "preflight finding assess FINDING_ID --cwe CWE-787",
            _assess,
            _assess_arguments,
        ),
        Verb(
            "share",
            "set the TLP label and audience (reviewers)",
            "preflight finding share FINDING_ID --tlp amber --sector water",
            _share,
            _share_arguments,
        ),
        Verb(
            "comments",
            "a finding's comments you may read, in the order written",
            "preflight finding comments FINDING_ID --limit 20",
            _comments,
            _history_arguments,
        ),
        Verb(
            "comment",
            "comment on a finding you may see, for reviewers or for its audience",
            "preflight finding comment FINDING_ID --visibility audience --body 'Patched in 1.4.2'",
            _comment,
            _comment_arguments,
        ),
        Verb(
            "edit-comment",
            "a new revision of your own comment",
            "preflight finding edit-comment FINDING_ID COMMENT_ID --body 'Patched in 1.4.3'",
            _edit_comment,
            _edit_comment_arguments,
        ),
        Verb(
            "attachments",
            "a finding's attachments you may read (name, type, size, SHA-256), in the order added",
            "preflight finding attachments FINDING_ID --limit 20",
            _attachments,
            _history_arguments,
        ),
        Verb(
            "attach",
            "attach an evidence file to a finding you may see, for reviewers or for its audience",
            "preflight finding attach FINDING_ID crash.pcap --visibility internal",
            _attach,
            _attach_arguments,
        ),
        Verb(
            "attachment",
            "fetch an attachment's bytes into a file, checked against its SHA-256",
            "preflight finding attachment FINDING_ID ATTACHMENT_ID -o crash.pcap",
            _attachment,
            _attachment_arguments,
        ),
        Verb(
            "assign",
            "assign a finding to a reviewer, or unassign it (reviewers)",
            "preflight finding assign FINDING_ID --to REVIEWER_ID",
            _assign,
            _assign_arguments,
        ),
        Verb(
            "ssvc",
            "record an SSVC decision; the clearinghouse computes the outcome (reviewers)",
            "preflight finding ssvc FINDING_ID --exploitation public-poc --automatable no "
            "--technical-impact total --mission-well-being high",
            _decide_ssvc,
            _ssvc_arguments,
        ),
        Verb(
            "link",
            "mark a finding a duplicate of, subsumed by or merged into another (reviewers)",
            "preflight finding link FINDING_ID --kind duplicate-of --to OTHER_ID",
            _link,
            _link_arguments,
        ),
        Verb(
            "patch-status",
            "report your organisation's patch status (operators)",
            "preflight finding patch-status FINDING_ID --status patched",
            _patch_status,
            _patch_arguments,
        ),
        Verb(
            "export",
            "the finding as CSAF, OSV or STIX, as you may see it",
            "preflight finding export FINDING_ID --format csaf -o advisory.json",
            _export,
            _export_arguments,
        ),
        Verb(
            "import",
            "a CSAF 2.1 (csaf), CSAF 2.0 or OSV document as a new finding (reviewers)",
            "preflight finding import advisory.json --format csaf",
            _import,
            _import_arguments,
        ),
    ),
)
