"""Alembic environment for the clearinghouse database (URL from the `sqlalchemy.url` option)."""

from preflight_common.db import migrations_env

from preflight_clearinghouse.adapters.tables import metadata

migrations_env(metadata)
