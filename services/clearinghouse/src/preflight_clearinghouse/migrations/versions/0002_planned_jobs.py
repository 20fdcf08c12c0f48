"""Each job knows the size of its submission's plan, so a review ends exactly when the whole plan has.

Completeness no longer depends on how long a plan has looked complete, so the review_states
table is no longer read. It is not dropped here: the previous release's pods still read it
while this migration runs during a rolling upgrade (expand/contract, docs/architecture.md). A
migration of a later release drops it (IF EXISTS: databases migrated before this rule no longer
have it).

`jobs.planned_jobs` is unused since migration 0007 (the benchmark announces a plan's end) and is
dropped by a later release's migration too.

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


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('planned_jobs')
