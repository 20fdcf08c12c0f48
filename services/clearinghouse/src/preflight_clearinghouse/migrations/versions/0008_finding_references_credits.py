"""A finding's references (typed URLs) and credits, as JSON lists; NULL (the previous release's
rows) reads as none.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("findings", sa.Column("case_references", sa.Text(), nullable=True))
    op.add_column("findings", sa.Column("case_credits", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_column("case_credits")
        batch_op.drop_column("case_references")
