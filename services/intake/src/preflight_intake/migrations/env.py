"""Alembic environment for intake's database (URL from the `sqlalchemy.url` main option)."""

from preflight_common.db import migrations_env
from preflight_intake.adapters.tables import metadata

migrations_env(metadata)
