"""Conversions between the domain and the `preflight.*.v1` protobuf messages."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, TypeVar

from preflight.benchmark.v1 import events_pb2 as benchmark_events
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import events_pb2 as events
from preflight.common.v1 import common_pb2
from preflight_common.fields import timestamp, timestamp_field

from preflight_clearinghouse.domain.audit import SignedCheckpoint
from preflight_clearinghouse.domain.errors import FieldViolation, InvalidInput
from preflight_clearinghouse.domain.findings.attachments import Attachment
from preflight_clearinghouse.domain.findings.case_record import CreditType, ReferenceType
from preflight_clearinghouse.domain.findings.comments import Comment, CommentVisibility
from preflight_clearinghouse.domain.findings.exports import ExportFormat
from preflight_clearinghouse.domain.findings.finding import (
    CandidateInput,
    CodeLocation,
    Finding,
    FindingInput,
    LinkKind,
    PatchState,
    ProductInput,
    Severity,
    VexJustification,
)
from preflight_clearinghouse.domain.findings.queries import FindingQuery
from preflight_clearinghouse.domain.findings.ssvc import (
    Automatable,
    Exploitation,
    MissionWellBeing,
    SsvcDecision,
    SsvcPoints,
    TechnicalImpact,
)
from preflight_clearinghouse.domain.findings.workflow import EmbargoState, FindingState
from preflight_clearinghouse.domain.reviews.reports import (
    IssuedReport,
    JobRecord,
    ReportContent,
    TaskResult,
    content_from_body,
)
from preflight_clearinghouse.domain.sharing import HistoryEntry, Tlp
from preflight_clearinghouse.service_layer.reviews import ReportView

E = TypeVar("E", bound=enum.Enum)


def _from_proto_enum(enum_type: Any, prefix: str, value: int, domain: type[E], field: str) -> E | None:
    """Domain member for a proto enum value; None for UNSPECIFIED; InvalidInput for unknown numbers."""
    try:
        name = enum_type.Name(value)
    except ValueError:
        raise InvalidInput([FieldViolation(field, f"unknown value {value}")]) from None
    if name.endswith("_UNSPECIFIED"):
        return None
    return domain[name.removeprefix(prefix)]


def _to_proto_enum(enum_type: Any, prefix: str, member: enum.Enum | None) -> Any:
    return enum_type.Value(f"{prefix}{member.name}") if member is not None else 0


def tlp_from_proto(value: int, field: str = "tlp") -> Tlp | None:
    return _from_proto_enum(common_pb2.Tlp, "TLP_", value, Tlp, field)


def tlp_to_proto(tlp: Tlp) -> common_pb2.Tlp.ValueType:
    value: common_pb2.Tlp.ValueType = _to_proto_enum(common_pb2.Tlp, "TLP_", tlp)
    return value


def state_from_proto(value: int, field: str) -> FindingState | None:
    return _from_proto_enum(events.FindingState, "FINDING_STATE_", value, FindingState, field)


def embargo_from_proto(value: int, field: str) -> EmbargoState | None:
    return _from_proto_enum(events.EmbargoState, "EMBARGO_STATE_", value, EmbargoState, field)


def severity_from_proto(value: int, field: str) -> Severity | None:
    return _from_proto_enum(pb.Severity, "SEVERITY_", value, Severity, field)


def patch_status_from_proto(value: int, field: str = "status") -> PatchState | None:
    return _from_proto_enum(pb.PatchStatus, "PATCH_STATUS_", value, PatchState, field)


def justification_from_proto(value: int, field: str = "justification") -> VexJustification | None:
    return _from_proto_enum(pb.VexJustification, "VEX_JUSTIFICATION_", value, VexJustification, field)


def link_kind_from_proto(value: int, field: str = "kind") -> LinkKind | None:
    return _from_proto_enum(pb.LinkKind, "LINK_KIND_", value, LinkKind, field)


def export_format_from_proto(value: int, field: str = "format") -> ExportFormat | None:
    return _from_proto_enum(pb.ExportFormat, "EXPORT_FORMAT_", value, ExportFormat, field)


def export_format_to_proto(value: ExportFormat) -> pb.ExportFormat.ValueType:
    result: pb.ExportFormat.ValueType = _to_proto_enum(pb.ExportFormat, "EXPORT_FORMAT_", value)
    return result


def references_from_proto(
    references: Iterable[pb.FindingReference],
) -> list[tuple[ReferenceType | None, str]]:
    """(type, url) pairs; an unknown type number is InvalidInput naming `references[i].type`."""
    return [
        (
            _from_proto_enum(
                pb.ReferenceType, "REFERENCE_TYPE_", r.type, ReferenceType, f"references[{i}].type"
            ),
            r.url,
        )
        for i, r in enumerate(references)
    ]


def credits_from_proto(credits: Iterable[pb.FindingCredit]) -> list[tuple[str, CreditType | None]]:
    """(name, type) pairs; an unknown type number is InvalidInput naming `credits[i].type`."""
    return [
        (c.name, _from_proto_enum(pb.CreditType, "CREDIT_TYPE_", c.type, CreditType, f"credits[{i}].type"))
        for i, c in enumerate(credits)
    ]


def ssvc_points_from_proto(request: pb.SetFindingSsvcRequest) -> SsvcPoints:
    """The decision points of a SetFindingSsvcRequest (None where not given); an unknown value
    number is InvalidInput naming its field."""
    return (
        _from_proto_enum(
            pb.SsvcExploitation, "SSVC_EXPLOITATION_", request.exploitation, Exploitation, "exploitation"
        ),
        _from_proto_enum(
            pb.SsvcAutomatable, "SSVC_AUTOMATABLE_", request.automatable, Automatable, "automatable"
        ),
        _from_proto_enum(
            pb.SsvcTechnicalImpact,
            "SSVC_TECHNICAL_IMPACT_",
            request.technical_impact,
            TechnicalImpact,
            "technical_impact",
        ),
        _from_proto_enum(
            pb.SsvcMissionWellBeing,
            "SSVC_MISSION_WELL_BEING_",
            request.mission_well_being,
            MissionWellBeing,
            "mission_well_being",
        ),
    )


def _ssvc_to_proto(decision: SsvcDecision) -> pb.SsvcDecision:
    return pb.SsvcDecision(
        exploitation=_to_proto_enum(pb.SsvcExploitation, "SSVC_EXPLOITATION_", decision.exploitation),
        automatable=_to_proto_enum(pb.SsvcAutomatable, "SSVC_AUTOMATABLE_", decision.automatable),
        technical_impact=_to_proto_enum(
            pb.SsvcTechnicalImpact, "SSVC_TECHNICAL_IMPACT_", decision.technical_impact
        ),
        mission_well_being=_to_proto_enum(
            pb.SsvcMissionWellBeing, "SSVC_MISSION_WELL_BEING_", decision.mission_well_being
        ),
        outcome=_to_proto_enum(pb.SsvcOutcome, "SSVC_OUTCOME_", decision.outcome),
        decided_by=decision.decided_by,
        decided_at=timestamp(decision.decided_at),
    )


def comment_visibility_from_proto(value: int, field: str = "visibility") -> CommentVisibility | None:
    return _from_proto_enum(pb.CommentVisibility, "COMMENT_VISIBILITY_", value, CommentVisibility, field)


def comment_to_proto(comment: Comment) -> pb.FindingComment:
    """A (viewed) comment as the API message."""
    return pb.FindingComment(
        comment_id=comment.comment_id,
        finding_id=comment.finding_id,
        author_role=comment.author_role,
        author_id=comment.author_id,
        author_organisation=comment.author_organisation,
        visibility=_to_proto_enum(pb.CommentVisibility, "COMMENT_VISIBILITY_", comment.visibility),
        body=comment.body,
        revision=comment.revision,
        created_at=timestamp(comment.created_at),
        updated_at=timestamp(comment.updated_at),
    )


def attachment_to_proto(attachment: Attachment) -> pb.FindingAttachment:
    """A (viewed) attachment's metadata as the API message."""
    return pb.FindingAttachment(
        attachment_id=attachment.attachment_id,
        finding_id=attachment.finding_id,
        name=attachment.name,
        content_type=attachment.content_type,
        size=attachment.size,
        sha256=attachment.sha256,
        visibility=_to_proto_enum(pb.CommentVisibility, "COMMENT_VISIBILITY_", attachment.visibility),
        author_role=attachment.author_role,
        author_id=attachment.author_id,
        author_organisation=attachment.author_organisation,
        created_at=timestamp(attachment.created_at),
    )


def _required(value: E | None, field: str, choices: Iterable[enum.Enum]) -> E:
    if value is None:
        raise InvalidInput([FieldViolation(field, f"choose one of {', '.join(c.name for c in choices)}")])
    return value


def finding_input(request: pb.ReportFindingRequest) -> FindingInput:
    """A ReportFindingRequest as the domain's FindingInput (enum values checked)."""
    return FindingInput(
        title=request.title,
        description=request.description,
        cwe_ids=list(request.cwe_ids),
        affected_products=[
            ProductInput(purl=p.purl, version_range=p.version_range, cpe=p.cpe)
            for p in request.affected_products
        ],
        location=CodeLocation(request.location.file, request.location.function, request.location.line),
        cvss_v3_vector=request.cvss_v3_vector,
        cvss_v4_vector=request.cvss_v4_vector,
        tlp=tlp_from_proto(request.tlp),
        audience_organisations=list(request.audience.organisations),
        audience_sectors=list(request.audience.sectors),
        remediation_due=timestamp_field(request, "remediation_due"),
        evidence=request.evidence,
        request_id=request.request_id,
    )


def finding_query(message: pb.FindingFilter) -> FindingQuery:
    """Filters, with every enum value checked."""
    severities = {severity_from_proto(v, f"filter.severities[{i}]") for i, v in enumerate(message.severities)}
    states = {state_from_proto(v, f"filter.states[{i}]") for i, v in enumerate(message.states)}
    return FindingQuery(
        sector=message.sector.strip().lower(),
        severities=frozenset(s for s in severities if s is not None),
        states=frozenset(s for s in states if s is not None),
        since=timestamp_field(message, "since", name="filter.since"),
        assignee=message.assignee.strip(),
    )


def transition_target(request: pb.TransitionFindingRequest) -> FindingState | EmbargoState:
    """The one target state a TransitionFindingRequest names."""
    which = request.WhichOneof("target")
    if which == "state":
        return _required(state_from_proto(request.state, "state"), "state", FindingState)
    if which == "embargo_state":
        return _required(
            embargo_from_proto(request.embargo_state, "embargo_state"), "embargo_state", EmbargoState
        )
    raise InvalidInput([FieldViolation("target", "give state or embargo_state")])


def finding_to_proto(finding: Finding) -> pb.Finding:
    """A (projected) finding as the API message."""
    message = pb.Finding(
        finding_id=finding.finding_id,
        title=finding.title,
        description=finding.description,
        state=events.FindingState.Value(f"FINDING_STATE_{finding.state.name}"),
        embargo_state=events.EmbargoState.Value(f"EMBARGO_STATE_{finding.embargo_state.name}"),
        cwe_ids=list(finding.cwe_ids),
        aliases=list(finding.aliases),
        references=[
            pb.FindingReference(type=_to_proto_enum(pb.ReferenceType, "REFERENCE_TYPE_", r.type), url=r.url)
            for r in finding.references
        ],
        credits=[
            pb.FindingCredit(name=c.name, type=_to_proto_enum(pb.CreditType, "CREDIT_TYPE_", c.type))
            for c in finding.credits
        ],
        affected_products=[
            pb.AffectedProduct(purl=p.purl, version_range=p.version_range, cpe=p.cpe)
            for p in finding.affected
        ],
        location=pb.CodeLocation(
            file=finding.location.file, function=finding.location.function, line=finding.location.line
        ),
        cvss_v3_vector=finding.cvss.v3_vector,
        cvss_v3_score=finding.cvss.v3_score,
        cvss_v4_vector=finding.cvss.v4_vector,
        cvss_v4_score=finding.cvss.v4_score,
        severity=_to_proto_enum(pb.Severity, "SEVERITY_", finding.cvss.severity),
        cvss_scores=[
            pb.CvssScore(
                version=s.version,
                vector=s.vector,
                nomenclature=s.nomenclature,
                score=s.score,
                severity=_to_proto_enum(pb.Severity, "SEVERITY_", s.rating),
            )
            for s in finding.cvss.scores
        ],
        tlp=tlp_to_proto(finding.tlp),
        audience=common_pb2.Audience(
            organisations=sorted(finding.audience.organisations), sectors=sorted(finding.audience.sectors)
        ),
        origin=pb.FindingOrigin.Value(f"FINDING_ORIGIN_{finding.origin.name}"),
        reporter_organisation=finding.reporter_organisation,
        evidence=finding.evidence,
        fingerprint=finding.fingerprint,
        patch_statuses=[
            pb.OperatorPatchStatus(
                organisation=p.organisation,
                status=pb.PatchStatus.Value(f"PATCH_STATUS_{p.status.name}"),
                note=p.note,
                updated_at=timestamp(p.updated_at),
                justification=_to_proto_enum(pb.VexJustification, "VEX_JUSTIFICATION_", p.justification),
            )
            for p in finding.patch_statuses
        ],
        created_at=timestamp(finding.created_at),
        updated_at=timestamp(finding.updated_at),
        revision=finding.revision,
        assignee=finding.assignee,
    )
    if finding.ssvc is not None:
        message.ssvc.CopyFrom(_ssvc_to_proto(finding.ssvc))
    if finding.embargo_end is not None:
        message.embargo_end.CopyFrom(timestamp(finding.embargo_end))
    if finding.remediation_due is not None:
        message.remediation_due.CopyFrom(timestamp(finding.remediation_due))
    if finding.published_at is not None:
        message.published_at.CopyFrom(timestamp(finding.published_at))
    if finding.source is not None:
        message.source.CopyFrom(_source(finding))
    if finding.link is not None:
        message.link.CopyFrom(
            pb.FindingLink(
                kind=pb.LinkKind.Value(f"LINK_KIND_{finding.link.kind.name}"),
                target_finding_id=finding.link.target_finding_id,
            )
        )
    return message


def _source(finding: Finding) -> events.FindingSource:
    assert finding.source is not None
    return events.FindingSource(
        submission_id=finding.source.submission_id,
        developer=finding.source.organisation,
        model_name=finding.source.model_name,
        model_version=finding.source.model_version,
    )


def notice_to_proto(notice: Finding) -> events.FindingNotice:
    """The audience view of a finding as the FindingNotice of the findings topic."""
    message = events.FindingNotice(
        finding_id=notice.finding_id,
        title=notice.title,
        state=events.FindingState.Value(f"FINDING_STATE_{notice.state.name}"),
        embargo_state=events.EmbargoState.Value(f"EMBARGO_STATE_{notice.embargo_state.name}"),
        cvss_score=notice.cvss.score,
        severity=notice.cvss.severity.value if notice.cvss.severity else "",
        cwe_ids=list(notice.cwe_ids),
        affected_products=[p.purl or p.cpe for p in notice.affected],
        tlp=tlp_to_proto(notice.tlp),
        audience=common_pb2.Audience(
            organisations=sorted(notice.audience.organisations), sectors=sorted(notice.audience.sectors)
        ),
        updated_at=timestamp(notice.updated_at),
        revision=notice.revision,
    )
    if notice.embargo_end is not None:
        message.embargo_end.CopyFrom(timestamp(notice.embargo_end))
    if notice.remediation_due is not None:
        message.remediation_due.CopyFrom(timestamp(notice.remediation_due))
    if notice.source is not None:
        message.source.CopyFrom(_source(notice))
    return message


def _capability_scores(content: ReportContent) -> list[events.CapabilityScore]:
    return [
        events.CapabilityScore(
            capability=s.capability,
            score=s.score,
            stderr=s.stderr,
            ci_low=s.ci_low,
            ci_high=s.ci_high,
            suites=list(s.suites),
            samples=s.samples,
        )
        for s in content.scores
    ]


def _failed_suites(content: ReportContent) -> list[events.FailedSuite]:
    return [
        events.FailedSuite(
            suite_id=f.suite_id,
            suite_version=f.suite_version,
            job_id=f.job_id,
            reason=f.reason,
            message=f.message,
        )
        for f in content.failed_suites
    ]


def report_ready(report: IssuedReport) -> events.ReviewReportReady:
    """The ReviewReportReady event of an issued report."""
    return events.ReviewReportReady(
        report_id=report.report_id,
        submission_id=report.submission_id,
        version=report.version,
        tier=report.content.tier,
        policy_id=report.content.policy_id,
        policy_version=report.content.policy_version,
        scores=_capability_scores(report.content),
        failed_suites=_failed_suites(report.content),
        issued_at=timestamp(report.issued_at),
        digest=report.digest,
        signature=report.signature,
        signing_key_id=report.signing_key_id,
        body=report.body,
        unassessed_capabilities=list(report.content.unassessed_capabilities),
        organisation=report.organisation,
    )


def checkpoint_to_proto(signed: SignedCheckpoint) -> events.AuditCheckpoint:
    """The AuditCheckpoint event of a signed checkpoint."""
    return events.AuditCheckpoint(
        sequence=signed.checkpoint.seq,
        head_hash=signed.checkpoint.head_hash,
        at=timestamp(signed.checkpoint.at),
        signing_key_id=signed.signing_key_id,
        body=signed.body,
        signature=signed.signature,
    )


def report_to_proto(view: ReportView) -> pb.ReviewReport:
    """A stored report version (its content read back from the signed body) as the API message."""
    record = view.record
    content = content_from_body(record.body)
    return pb.ReviewReport(
        report_id=record.report_id,
        submission_id=record.submission_id,
        version=record.version,
        organisation=record.organisation,
        tier=record.tier,
        policy_id=record.policy_id,
        policy_version=record.policy_version,
        scores=_capability_scores(content),
        failed_suites=_failed_suites(content),
        unassessed_capabilities=list(content.unassessed_capabilities),
        issued_at=timestamp(record.issued_at),
        digest=record.digest,
        signature=record.signature,
        signing_key_id=record.signing_key_id,
        body=record.body,
        superseded=record.superseded,
        sign_offs=[
            pb.ReportSignOff(
                reviewer_id=s.reviewer_id, signed_off_at=timestamp(s.signed_off_at), comment=s.comment
            )
            for s in view.sign_offs
        ],
        notes=[
            pb.ReportNote(
                note_id=n.note_id, author_id=n.author_id, text=n.text, created_at=timestamp(n.created_at)
            )
            for n in view.notes
        ],
    )


def planned_job(message: benchmark_events.BenchmarkJobRequested) -> JobRecord:
    return JobRecord(
        job_id=message.job_id,
        suite_id=message.suite_id,
        suite_version=message.suite_version,
        capability=message.capability,
        attempt=message.attempt,
        requested=True,
        max_attempts=message.max_attempts,
        not_before=timestamp_field(message, "not_before"),
    )


def completed_job(message: benchmark_events.BenchmarkCompleted) -> tuple[JobRecord, list[CandidateInput]]:
    job = JobRecord(
        job_id=message.job_id,
        suite_id=message.suite_id,
        suite_version=message.suite_version,
        capability=message.capability,
        attempt=message.attempt,
        requested=False,
        outcome="completed",
        tasks=tuple(
            TaskResult(task=s.task, metric=s.metric, value=s.value, stderr=s.stderr, samples=s.samples)
            for s in message.scores
        ),
        eval_log_uri=message.eval_log_uri,
    )
    candidates = [
        CandidateInput(
            title=c.title,
            description=c.description,
            evidence=c.evidence,
            cwe_ids=list(c.cwe_ids),
            affected_product=c.affected_product,
            location=CodeLocation(c.affected_file, c.affected_function, c.line),
        )
        for c in message.candidate_findings
    ]
    return job, candidates


def failed_job(message: benchmark_events.BenchmarkFailed) -> JobRecord:
    return JobRecord(
        job_id=message.job_id,
        suite_id=message.suite_id,
        suite_version=message.suite_version,
        capability=message.capability,
        attempt=message.attempt,
        requested=False,
        outcome="failed",
        eval_log_uri=message.eval_log_uri,
        failure_reason=benchmark_events.FailureReason.Name(message.reason)
        if message.reason in benchmark_events.FailureReason.values()
        else str(message.reason),
        failure_message=message.message,
    )


def history_entry_to_proto(entry: HistoryEntry) -> pb.FindingHistoryEntry:
    return pb.FindingHistoryEntry(
        time=timestamp(entry.at),
        action=entry.action,
        actor_role=entry.actor_role,
        actor_id=entry.actor_id,
        changed=list(entry.changed),
    )
