"""The benchmark's tables (SQLAlchemy Core). Alembic migrations create exactly these."""

from __future__ import annotations

from preflight_common.idempotency import processed_events_table
from preflight_common.outbox import outbox_table
from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, MetaData, String, Table, Text

metadata = MetaData()
outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)

submissions = Table(
    "submissions",
    metadata,
    Column("submission_id", String(64), primary_key=True),
    Column("organisation", String(200), nullable=False),
    Column("withdrawn_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("submission_id", String(64), nullable=False),
    Column("organisation", String(200), nullable=False),
    Column("suite_id", String(200), nullable=False),
    Column("suite_version", String(64), nullable=False),
    Column("capability", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("not_after", DateTime(timezone=True), nullable=False),
    Column("executor", String(64), nullable=False),
    Column("failure_reason", String(32), nullable=True),
    Column("message", Text, nullable=False, default=""),
    # The BenchmarkJobRequested payload (what the worker runs).
    Column("request", LargeBinary, nullable=False),
    # The terminal event's payload (BenchmarkCompleted or BenchmarkFailed), once ended.
    Column("result", LargeBinary, nullable=True),
    Column("eval_log_uri", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The W3C traceparent of the job's planning span: its attempts continue that trace.
    Column("traceparent", String(64), nullable=True),
)
Index("ix_jobs_submission", jobs.c.submission_id)
Index("ix_jobs_status_window", jobs.c.status, jobs.c.not_before)
Index("ix_jobs_created", jobs.c.created_at, jobs.c.job_id)
