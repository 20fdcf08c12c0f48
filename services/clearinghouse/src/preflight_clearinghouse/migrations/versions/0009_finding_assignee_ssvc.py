"""A finding's assignee (a reviewer principal, indexed for ListFindings' filter) and SSVC decision
(JSON); NULL (the previous release's rows) reads as unassigned and undecided.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("findings", sa.Column("assignee", sa.String(256), nullable=True))
    op.add_column("findings", sa.Column("ssvc", sa.Text(), nullable=True))
    op.create_index("ix_findings_assignee", "findings", ["assignee"])


def downgrade() -> None:
    op.drop_index("ix_findings_assignee", table_name="findings")
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_column("ssvc")
        batch_op.drop_column("assignee")
