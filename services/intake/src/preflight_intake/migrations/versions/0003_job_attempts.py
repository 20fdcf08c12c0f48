"""Each benchmark job keeps how many attempts it may take, so an outcome of an attempt it never had
is refused.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("benchmark_jobs", sa.Column("max_attempts", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("benchmark_jobs") as batch_op:
        batch_op.drop_column("max_attempts")
