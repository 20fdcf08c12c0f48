"""Each job knows the size of its submission's plan, so a review ends exactly when the whole plan has.

The review_states table goes: completeness no longer depends on how long a plan has looked
complete.

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
    op.add_column('jobs', sa.Column('planned_jobs', sa.Integer(), server_default='0', nullable=False))
    op.drop_index(op.f('ix_review_states_complete_since'), table_name='review_states')
    op.drop_table('review_states')


def downgrade() -> None:
    op.create_table(
        'review_states',
        sa.Column('submission_id', sa.String(length=200), nullable=False),
        sa.Column('complete_since', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('submission_id'),
    )
    op.create_index(op.f('ix_review_states_complete_since'), 'review_states', ['complete_since'], unique=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('planned_jobs')
