"""The database's clock: every notifier process sharing a PostgreSQL database agrees on "now"."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select


class DatabaseClock:
    """Reads the current instant from the database server (one short round trip per reading);
    a `preflight_common.clock.Clock`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __call__(self) -> datetime:
        with self._engine.connect() as conn:
            value = conn.execute(select(func.clock_timestamp())).scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
