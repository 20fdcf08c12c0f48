"""The VEX justification of a not-affected patch status; NULL (every other status, and the previous
release's rows) reads as none.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("patch_statuses", sa.Column("justification", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patch_statuses", schema=None) as batch_op:
        batch_op.drop_column("justification")
