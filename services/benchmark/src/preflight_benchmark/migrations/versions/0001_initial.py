"""The benchmark service's first schema: submissions, jobs, the outbox and processed events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("submission_id", sa.String(64), primary_key=True),
        sa.Column("organisation", sa.String(200), nullable=False),
        _ts("withdrawn_at", nullable=True),
        _ts("created_at"),
    )
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("submission_id", sa.String(64), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("suite_id", sa.String(200), nullable=False),
        sa.Column("suite_version", sa.String(64), nullable=False),
        sa.Column("capability", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        _ts("not_before"),
        _ts("not_after"),
        sa.Column("executor", sa.String(64), nullable=False),
        sa.Column("failure_reason", sa.String(32), nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("request", sa.LargeBinary, nullable=False),
        sa.Column("result", sa.LargeBinary, nullable=True),
        sa.Column("eval_log_uri", sa.Text, nullable=False),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        _ts("updated_at"),
    )
    op.create_index("ix_jobs_submission", "jobs", ["submission_id"])
    op.create_index("ix_jobs_status_window", "jobs", ["status", "not_before"])
    op.create_index("ix_jobs_created", "jobs", ["created_at", "job_id"])
    op.create_table(
        "outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        _ts("sent_at", nullable=True),
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"])
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("processed_events")
    op.drop_table("outbox")
    op.drop_table("jobs")
    op.drop_table("submissions")
