"""A withdrawn submission gets no report: the clearinghouse keeps which submissions were withdrawn.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'withdrawals',
        sa.Column('submission_id', sa.String(length=200), nullable=False),
        sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('submission_id'),
    )


def downgrade() -> None:
    op.drop_table('withdrawals')
