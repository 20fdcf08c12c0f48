"""Each benchmark job knows the size of its submission's plan, so a submission is UNDER_REVIEW only
once its whole plan has ended.

Unused since the benchmark announces a plan's end (BenchmarkPlanEnded): `planned_jobs` is neither
written nor read any more, and a later release's migration drops it (expand/contract).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("benchmark_jobs", sa.Column("planned_jobs", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("benchmark_jobs") as batch_op:
        batch_op.drop_column("planned_jobs")
