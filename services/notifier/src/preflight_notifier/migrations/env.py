"""Alembic environment for the notifier's database (URL from the `sqlalchemy.url` main option)."""

from preflight_common.db import migrations_env
from preflight_notifier.adapters.tables import metadata

migrations_env(metadata)
