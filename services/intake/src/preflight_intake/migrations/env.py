"""Alembic environment for intake's database (URL from the `sqlalchemy.url` main option)."""

from __future__ import annotations

from alembic import context
from preflight_common.db import make_engine
from preflight_intake.adapters.tables import metadata
from sqlalchemy import pool

url = context.config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("sqlalchemy.url is not set")
engine = make_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
