"""Intake's database schema (SQLAlchemy Core). The Alembic migrations create exactly this."""

from __future__ import annotations

from preflight_common.auth import tokens_table
from preflight_common.db import UtcDateTime
from preflight_common.idempotency import processed_events_table
from preflight_common.outbox import outbox_table
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
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

submissions = Table(
    "submissions",
    metadata,
    Column("submission_id", String(36), primary_key=True),
    Column("organisation", String(200), nullable=False),
    Column("submitted_by", String(200), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    # SHA-256 of the request without its credential, to tell a retry from a different request.
    Column("request_digest", String(64), nullable=False),
    Column("developer", String(200), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(100), nullable=False),
    Column("planned_release", UtcDateTime, nullable=False),
    Column("window_start", UtcDateTime, nullable=False),
    Column("window_end", UtcDateTime, nullable=False),
    Column("access_kind", String(16), nullable=False),
    Column("endpoint_base_url", Text, nullable=True),
    Column("endpoint_model_name", String(200), nullable=True),
    Column("credential_ref", String(64), nullable=True, unique=True),
    Column("weights_uri", Text, nullable=True),
    Column("weights_sha256", String(64), nullable=True),
    Column("weights_format", String(32), nullable=True),
    Column("contacts", JSON, nullable=False),
    Column("declared_capabilities", JSON, nullable=False),
    Column("intended_use", Text, nullable=False),
    Column("share_identity", Boolean, nullable=False),
    Column("flags", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("deadline_version", Integer, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("row_version", Integer, nullable=False),
    UniqueConstraint("submitted_by", "idempotency_key", name="uq_submissions_idempotency"),
    Index("ix_submissions_org_received", "organisation", "received_at", "submission_id"),
    Index("ix_submissions_received", "received_at", "submission_id"),
    Index("ix_submissions_status_release", "status", "planned_release"),
)

credentials = Table(
    "credentials",
    metadata,
    Column("credential_ref", String(64), primary_key=True),
    Column("submission_id", String(36), ForeignKey("submissions.submission_id"), nullable=False, unique=True),
    Column("key_id", String(32), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

credential_access_log = Table(
    "credential_access_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("credential_ref", String(200), nullable=False),
    Column("submission_id", String(36), nullable=True),
    Column("job_id", String(200), nullable=False),
    Column("principal_id", String(200), nullable=False),
    Column("organisation", String(200), nullable=False),
    # "granted", or "denied: <why>".
    Column("outcome", String(200), nullable=False),
    Column("accessed_at", UtcDateTime, nullable=False),
)

status_history = Table(
    "status_history",
    metadata,
    Column("submission_id", String(36), ForeignKey("submissions.submission_id"), primary_key=True),
    Column("sequence", Integer, primary_key=True, autoincrement=False),
    Column("status", String(20), nullable=False),
    Column("previous_status", String(20), nullable=True),
    Column("changed_at", UtcDateTime, nullable=False),
    # What caused it: a principal's call or a consumed event's id.
    Column("cause", String(300), nullable=False),
)

benchmark_jobs = Table(
    "benchmark_jobs",
    metadata,
    Column("submission_id", String(36), ForeignKey("submissions.submission_id"), primary_key=True),
    Column("job_id", String(200), primary_key=True),
    Column("requested_at", UtcDateTime, nullable=True),
    # Unused (neither written nor read): the benchmark announces a plan's end. Kept for the
    # previous release, which still reads it; a later release's migration drops it.
    Column("planned_jobs", Integer, nullable=False, server_default="0"),
    # The job's last attempt, from its request (0: requested before this was kept, no bound).
    Column("max_attempts", Integer, nullable=False, server_default="0"),
    Column("ended_at", UtcDateTime, nullable=True),
    # "completed" or "failed" once ended.
    Column("outcome", String(20), nullable=True),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
api_tokens = tokens_table(metadata)
