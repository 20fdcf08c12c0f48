"""Comments on findings (each at its latest revision) and every revision of each.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finding_comments",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("comment_id", sa.String(64), nullable=False),
        sa.Column("finding_id", sa.String(64), nullable=False),
        sa.Column("author_id", sa.String(256), nullable=False),
        sa.Column("author_role", sa.String(16), nullable=False),
        sa.Column("author_organisation", sa.String(200), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.finding_id"]),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("comment_id"),
    )
    op.create_index("ix_finding_comments_finding", "finding_comments", ["finding_id", "seq"])
    op.create_table(
        "finding_comment_revisions",
        sa.Column("comment_id", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["comment_id"], ["finding_comments.comment_id"]),
        sa.PrimaryKeyConstraint("comment_id", "revision"),
    )


def downgrade() -> None:
    op.drop_table("finding_comment_revisions")
    op.drop_index("ix_finding_comments_finding", table_name="finding_comments")
    op.drop_table("finding_comments")
