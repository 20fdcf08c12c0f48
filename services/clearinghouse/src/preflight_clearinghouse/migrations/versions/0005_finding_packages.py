"""The packages each finding's purl-named products name, indexed, so that the findings affecting
a package version are found without reading every finding.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from preflight_clearinghouse.domain.findings.packages import package_of

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    packages = op.create_table(
        "finding_packages",
        sa.Column("finding_id", sa.String(length=64), nullable=False),
        sa.Column("package", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.finding_id"]),
        sa.PrimaryKeyConstraint("finding_id", "package"),
    )
    op.create_index("ix_finding_packages_package", "finding_packages", ["package"], unique=False)
    findings = sa.table("findings", sa.column("finding_id", sa.String), sa.column("affected", sa.Text))
    rows = []
    for finding_id, affected in op.get_bind().execute(sa.select(findings.c.finding_id, findings.c.affected)):
        names = {package_of(product["purl"]) for product in json.loads(affected) if product.get("purl")}
        rows += [{"finding_id": finding_id, "package": name} for name in sorted(names)]
    if rows:
        op.bulk_insert(packages, rows)


def downgrade() -> None:
    op.drop_index("ix_finding_packages_package", table_name="finding_packages")
    op.drop_table("finding_packages")
