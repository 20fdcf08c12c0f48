"""A finding's aliases (CVE, GHSA and vendor ids), each held by one finding only.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finding_aliases",
        sa.Column("alias", sa.String(length=200), nullable=False),
        sa.Column("finding_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.finding_id"]),
        sa.PrimaryKeyConstraint("alias"),
    )
    op.create_index("ix_finding_aliases_finding_id", "finding_aliases", ["finding_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_finding_aliases_finding_id", table_name="finding_aliases")
    op.drop_table("finding_aliases")
