"""Evidence files attached to findings, with their bytes and digest.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finding_attachments",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("attachment_id", sa.String(64), nullable=False),
        sa.Column("finding_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("author_id", sa.String(256), nullable=False),
        sa.Column("author_role", sa.String(16), nullable=False),
        sa.Column("author_organisation", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.finding_id"]),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("attachment_id"),
    )
    op.create_index("ix_finding_attachments_finding", "finding_attachments", ["finding_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_finding_attachments_finding", table_name="finding_attachments")
    op.drop_table("finding_attachments")
