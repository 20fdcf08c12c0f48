"""Each planned job keeps how many attempts it may take and when its access window opens, so an
outcome of an attempt it never had, or of a run before its window opened, is refused.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("max_attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("not_before")
        batch_op.drop_column("max_attempts")
