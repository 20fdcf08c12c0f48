"""Findings stored with a CVSS 4.0 vector carrying threat or environmental metrics kept that
whole vector's score (CVSS-BT, -BE or -BTE) as their 4.0 score; the registry's 4.0 score is the
CVSS-B score (base metrics alone), and a finding's severity follows it. Rescore those rows.

Only the scores change: vectors, the audit log and issued documents stay as they are. The
previous release reads the same columns, now holding the CVSS-B score it would not have computed.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from cvss import CVSS4

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The CVSS 4.0 base metrics, as they were when this migration was written (the specification's).
BASE_METRICS = ("AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA")

findings = sa.table(
    "findings",
    sa.column("finding_id", sa.String),
    sa.column("cvss_v4_vector", sa.String),
    sa.column("cvss_v4_score", sa.Float),
    sa.column("cvss_v4_rating", sa.String),
    sa.column("severity", sa.String),
)


def cvss_b(vector: str) -> tuple[float, str]:
    """The CVSS-B score and rating (upper case, as the registry stores it) of a 4.0 vector."""
    given = CVSS4(vector).original_metrics
    base = CVSS4("CVSS:4.0/" + "/".join(f"{m}:{given[m]}" for m in BASE_METRICS))
    return float(base.base_score), str(base.severity).upper()


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(findings.c.finding_id, findings.c.cvss_v4_vector, findings.c.cvss_v4_score).where(
            findings.c.cvss_v4_vector != ""
        )
    ).all()
    for finding_id, vector, stored in rows:
        score, rating = cvss_b(vector)
        if score != stored:
            conn.execute(
                findings.update()
                .where(findings.c.finding_id == finding_id)
                .values(cvss_v4_score=score, cvss_v4_rating=rating, severity=rating)
            )


def downgrade() -> None:
    """Nothing to undo: the CVSS-B score is right for the previous release too."""
