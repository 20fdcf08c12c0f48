"""The clearinghouse's tables (SQLAlchemy Core). Alembic migrations create exactly these."""

from __future__ import annotations

from preflight_common.db import UtcDateTime
from preflight_common.idempotency import processed_events_table
from preflight_common.outbox import outbox_table
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

processed_events = processed_events_table(metadata)
outbox = outbox_table(metadata)

ID = 200
"""Length of identifiers (submission, job, organisation, principal ids)."""

# Retired: read by releases before migration 0002, by none since. Kept so that the previous
# release's pods work during a rolling upgrade; a migration of a later release drops it.
review_states = Table(
    "review_states",
    metadata,
    Column("submission_id", String(ID), primary_key=True),
    Column("complete_since", UtcDateTime(), nullable=True, index=True),
)

submissions = Table(
    "submissions",
    metadata,
    Column("submission_id", String(ID), primary_key=True),
    Column("organisation", String(ID), nullable=False),
    Column("model_name", Text, nullable=False),
    Column("model_version", Text, nullable=False),
    Column("share_identity", Boolean, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)

withdrawals = Table(
    "withdrawals",
    metadata,
    Column("submission_id", String(ID), primary_key=True),
    Column("withdrawn_at", UtcDateTime(), nullable=False),
)

# The benchmark said the submission's plan ended (BenchmarkPlanEnded): its jobs' ids, as JSON.
plan_ends = Table(
    "plan_ends",
    metadata,
    Column("submission_id", String(ID), primary_key=True),
    Column("job_ids", Text, nullable=False),
    Column("ended_at", UtcDateTime(), nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(ID), primary_key=True),
    Column("submission_id", String(ID), nullable=False, index=True),
    Column("suite_id", String(ID), nullable=False),
    Column("suite_version", String(ID), nullable=False),
    Column("capability", String(ID), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("requested", Boolean, nullable=False),
    # Unused (neither written nor read): the benchmark announces a plan's end (plan_ends). Kept for
    # the previous release, which still reads it; a later release's migration drops it.
    Column("planned_jobs", Integer, nullable=False, server_default="0"),
    # From the request: how many attempts the job may take (0: planned before this was kept, no
    # bound) and when its access window opens (moved by ReleasePlanChanged; NULL: not said).
    Column("max_attempts", Integer, nullable=False, server_default="0"),
    Column("not_before", UtcDateTime(), nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("tasks", Text, nullable=False),
    Column("eval_log_uri", Text, nullable=False),
    Column("failure_reason", String(ID), nullable=False),
    Column("failure_message", Text, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

reports = Table(
    "reports",
    metadata,
    Column("report_id", String(64), primary_key=True),
    Column("submission_id", String(ID), nullable=False),
    Column("version", Integer, nullable=False),
    Column("tier", String(ID), nullable=False),
    Column("policy_id", String(ID), nullable=False),
    Column("policy_version", String(ID), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("signing_key_id", String(64), ForeignKey("signing_keys.key_id"), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
    UniqueConstraint("submission_id", "version", name="uq_reports_submission_version"),
)

report_notes = Table(
    "report_notes",
    metadata,
    Column("note_id", String(64), primary_key=True),
    Column("report_id", String(64), ForeignKey("reports.report_id"), nullable=False, index=True),
    Column("author_id", String(ID), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

report_sign_offs = Table(
    "report_sign_offs",
    metadata,
    Column("report_id", String(64), ForeignKey("reports.report_id"), primary_key=True),
    Column("reviewer_id", String(ID), primary_key=True),
    Column("comment", Text, nullable=False),
    Column("signed_off_at", UtcDateTime(), nullable=False),
)

findings = Table(
    "findings",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("finding_id", String(64), nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("state", String(32), nullable=False),
    Column("embargo_state", String(32), nullable=False),
    Column("embargo_end", UtcDateTime(), nullable=True),
    Column("remediation_due", UtcDateTime(), nullable=True),
    Column("cwe_ids", Text, nullable=False),
    Column("affected", Text, nullable=False),
    Column("location_file", Text, nullable=False),
    Column("location_function", Text, nullable=False),
    Column("location_line", Integer, nullable=False),
    Column("cvss_v3_vector", String(ID), nullable=False),
    Column("cvss_v3_score", Float, nullable=False),
    Column("cvss_v3_rating", String(16), nullable=True),
    Column("cvss_v4_vector", String(ID), nullable=False),
    Column("cvss_v4_score", Float, nullable=False),
    Column("cvss_v4_rating", String(16), nullable=True),
    Column("severity", String(16), nullable=True),
    Column("tlp", String(16), nullable=False),
    Column("audience_organisations", Text, nullable=False),
    Column("audience_sectors", Text, nullable=False),
    Column("sharing_key", String(64), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("reporter_id", String(ID), nullable=False),
    Column("reporter_organisation", String(ID), nullable=False),
    Column("submission_id", String(ID), nullable=True, index=True),
    Column("request_id", String(ID), nullable=True),
    Column("fingerprint", String(64), nullable=False),
    Column("link_kind", String(16), nullable=True),
    Column("link_target", String(64), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("published_at", UtcDateTime(), nullable=True),
    Column("revision", Integer, nullable=False),
    # References and credits as JSON lists (NULL: none; added by migration 0008).
    Column("case_references", Text, nullable=True),
    Column("case_credits", Text, nullable=True),
    # The reviewer principal it is assigned to (NULL: none) and the SSVC decision as JSON (NULL:
    # none); added by migration 0009.
    Column("assignee", String(256), nullable=True, index=True),
    Column("ssvc", Text, nullable=True),
    UniqueConstraint("reporter_id", "request_id", name="uq_findings_request"),
    Index("ix_findings_dedup", "fingerprint", "sharing_key"),
    Index("ix_findings_updated_at", "updated_at"),
)

finding_audience = Table(
    "finding_audience",
    metadata,
    Column("finding_id", String(64), ForeignKey("findings.finding_id"), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("value", String(ID), primary_key=True),
    Index("ix_finding_audience_value", "kind", "value"),
)

finding_packages = Table(
    "finding_packages",
    metadata,
    Column("finding_id", String(64), ForeignKey("findings.finding_id"), primary_key=True),
    # The package a purl-named affected product names (`domain.findings.packages.package_of`): the index
    # that answers "which findings affect this package version?" without reading every finding.
    Column("package", String(512), primary_key=True),
    Index("ix_finding_packages_package", "package"),
)

finding_aliases = Table(
    "finding_aliases",
    metadata,
    # An alias names one finding only: the primary key is the uniqueness check's last word.
    Column("alias", String(ID), primary_key=True),
    Column("finding_id", String(64), ForeignKey("findings.finding_id"), nullable=False, index=True),
)

patch_statuses = Table(
    "patch_statuses",
    metadata,
    Column("finding_id", String(64), ForeignKey("findings.finding_id"), primary_key=True),
    Column("organisation", String(ID), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("note", Text, nullable=False),
    Column("updated_by", String(ID), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # The VEX justification of a NOT_AFFECTED statement (migration 0011; NULL otherwise).
    Column("justification", String(64), nullable=True),
)

# A finding's comments, each at its latest revision (migration 0010); `seq` orders them.
finding_comments = Table(
    "finding_comments",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("comment_id", String(64), nullable=False, unique=True),
    Column("finding_id", String(64), ForeignKey("findings.finding_id"), nullable=False),
    Column("author_id", String(256), nullable=False),
    Column("author_role", String(16), nullable=False),
    Column("author_organisation", String(ID), nullable=False),
    Column("visibility", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_finding_comments_finding", "finding_id", "seq"),
)

# Every revision of every comment, the first included: an edit is never silent (migration 0010).
finding_comment_revisions = Table(
    "finding_comment_revisions",
    metadata,
    Column("comment_id", String(64), ForeignKey("finding_comments.comment_id"), primary_key=True),
    Column("revision", Integer, primary_key=True, autoincrement=False),
    Column("body", Text, nullable=False),
    Column("written_at", UtcDateTime(), nullable=False),
)

# Evidence files attached to findings, bytes and all (migration 0012); `seq` orders them. Lists read
# every column but `content`.
finding_attachments = Table(
    "finding_attachments",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("attachment_id", String(64), nullable=False, unique=True),
    Column("finding_id", String(64), ForeignKey("findings.finding_id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("visibility", String(16), nullable=False),
    Column("author_id", String(256), nullable=False),
    Column("author_role", String(16), nullable=False),
    Column("author_organisation", String(ID), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Index("ix_finding_attachments_finding", "finding_id", "seq"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(ID), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject_kind", String(16), nullable=False),
    Column("subject_id", String(ID), nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_subject", "subject_kind", "seq"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
