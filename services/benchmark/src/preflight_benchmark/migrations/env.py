"""Alembic environment for the benchmark service's database (URL from the `sqlalchemy.url` main option)."""

from preflight_benchmark.adapters.tables import metadata
from preflight_common.db import migrations_env

migrations_env(metadata)
