"""The end of each submission's plan as the benchmark announced it (BenchmarkPlanEnded): a report
is issued once the plan has ended and every job it lists has its result. From here on
`jobs.planned_jobs` is neither written nor read; a later release's migration drops it.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_ends",
        sa.Column("submission_id", sa.String(length=200), nullable=False),
        sa.Column("job_ids", sa.Text(), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("submission_id"),
    )


def downgrade() -> None:
    op.drop_table("plan_ends")
