"""A review waiting out its settle window keeps the trace context of the event that completed it.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('review_states', sa.Column('traceparent', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('review_states', schema=None) as batch_op:
        batch_op.drop_column('traceparent')
