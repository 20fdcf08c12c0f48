"""Intake's first schema: submissions, credentials and their access log, status history,
benchmark jobs, the outbox, processed events and API tokens.

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
        sa.Column("submission_id", sa.String(36), primary_key=True),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("submitted_by", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("developer", sa.String(200), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        _ts("planned_release"),
        _ts("window_start"),
        _ts("window_end"),
        sa.Column("access_kind", sa.String(16), nullable=False),
        sa.Column("endpoint_base_url", sa.Text, nullable=True),
        sa.Column("endpoint_model_name", sa.String(200), nullable=True),
        sa.Column("credential_ref", sa.String(64), nullable=True, unique=True),
        sa.Column("weights_uri", sa.Text, nullable=True),
        sa.Column("weights_sha256", sa.String(64), nullable=True),
        sa.Column("weights_format", sa.String(32), nullable=True),
        sa.Column("contacts", sa.JSON, nullable=False),
        sa.Column("declared_capabilities", sa.JSON, nullable=False),
        sa.Column("intended_use", sa.Text, nullable=False),
        sa.Column("share_identity", sa.Boolean, nullable=False),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("deadline_version", sa.Integer, nullable=False),
        _ts("received_at"),
        _ts("updated_at"),
        sa.Column("row_version", sa.Integer, nullable=False),
        sa.UniqueConstraint("submitted_by", "idempotency_key", name="uq_submissions_idempotency"),
    )
    op.create_index("ix_submissions_org_received", "submissions", ["organisation", "received_at", "submission_id"])
    op.create_index("ix_submissions_received", "submissions", ["received_at", "submission_id"])
    op.create_index("ix_submissions_status_release", "submissions", ["status", "planned_release"])
    op.create_table(
        "credentials",
        sa.Column("credential_ref", sa.String(64), primary_key=True),
        sa.Column(
            "submission_id",
            sa.String(36),
            sa.ForeignKey("submissions.submission_id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "credential_access_log",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("credential_ref", sa.String(200), nullable=False),
        sa.Column("submission_id", sa.String(36), nullable=True),
        sa.Column("job_id", sa.String(200), nullable=False),
        sa.Column("principal_id", sa.String(200), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(200), nullable=False),
        _ts("accessed_at"),
    )
    op.create_table(
        "status_history",
        sa.Column("submission_id", sa.String(36), sa.ForeignKey("submissions.submission_id"), primary_key=True),
        sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("previous_status", sa.String(20), nullable=True),
        _ts("changed_at"),
        sa.Column("cause", sa.String(300), nullable=False),
    )
    op.create_table(
        "benchmark_jobs",
        sa.Column("submission_id", sa.String(36), sa.ForeignKey("submissions.submission_id"), primary_key=True),
        sa.Column("job_id", sa.String(200), primary_key=True),
        _ts("requested_at", nullable=True),
        _ts("ended_at", nullable=True),
        sa.Column("outcome", sa.String(20), nullable=True),
    )
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
    op.create_table(
        "api_tokens",
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("principal_id", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("sectors", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("revoked_at", nullable=True),
    )


def downgrade() -> None:
    for table in (
        "api_tokens",
        "processed_events",
        "outbox",
        "benchmark_jobs",
        "status_history",
        "credential_access_log",
        "credentials",
        "submissions",
    ):
        op.drop_table(table)
