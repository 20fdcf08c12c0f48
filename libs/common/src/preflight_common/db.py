"""Database engines and migrations (SQLite embedded default, PostgreSQL in production)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import DateTime, Dialect, Engine, MetaData, create_engine, event, pool
from sqlalchemy.engine import make_url
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)
_POSTGRES_DISK_FULL = "53100"
# The PostgreSQL advisory lock (per database) held while migrations run.
MIGRATION_LOCK = 0x707265666D696772  # "prefmigr"


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    Binding a naive datetime raises ValueError. SQLite keeps no offset, so values are stored
    there as naive UTC (which keeps text comparisons and indexes right) and read back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        moment = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str, **options: Any) -> Engine:
    """An engine for `url`.

    SQLite files get WAL journaling, enforced foreign keys and a busy timeout,
    and their parent folder is created; `postgresql://` URLs use psycopg 3.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        options.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(parsed, **options)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    options.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **options)


def run_migrations(url: str, script_location: Path | str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` with the Alembic scripts at `script_location`.

    Runs hold a lock on the database while they migrate (`migration_lock`), so concurrent runs
    (a release's hook Job and a service starting, two replicas) apply each migration once: the
    later run waits, then finds the schema current. The scripts' env.py reads the URL from
    `config.get_main_option("sqlalchemy.url")`.
    """
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option(
        "sqlalchemy.url", make_url(url).render_as_string(hide_password=False).replace("%", "%%")
    )
    with migration_lock(url):
        newer = _unknown_revisions(url, ScriptDirectory.from_config(config))
        if newer:
            # A later release migrated this database (its hook ran while this release's pods still
            # serve or restart): its migrations only expand the schema, so this code runs on it.
            log.warning("database schema %s is newer than these migrations; left as it is", ", ".join(newer))
            return
        command.upgrade(config, revision)


def migrations_env(metadata: MetaData) -> None:
    """The whole of a service's Alembic `env.py`: migrate the database the `sqlalchemy.url` option
    names to `metadata` (online, one connection, no pool), or print the SQL (`--sql`, offline).

    Batch mode is on, so SQLite's table rebuilds and PostgreSQL's ALTERs come from the same
    migration.
    """
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def _unknown_revisions(url: str, scripts: ScriptDirectory) -> list[str]:
    """The database's current revisions that `scripts` does not know (a later release's)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
    known = {r.revision for r in scripts.walk_revisions()}
    return [r for r in current if r not in known]


@contextlib.contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold the database's migration lock: PostgreSQL's session advisory lock `MIGRATION_LOCK` on a
    connection of its own, or for a SQLite file an exclusive `flock` on `<file>.migrate.lock`
    beside it (an in-memory database needs none). Blocks until the lock is free."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = make_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
                try:
                    yield
                finally:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
        finally:
            engine.dispose()
        return
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        yield
        return
    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{parsed.database}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def storage_exhausted(exc: BaseException) -> bool:
    """Whether `exc` (or an exception it wraps) says the database or its disk is full.

    SQLite's SQLITE_FULL ("database or disk is full", also past `max_page_count`), an OSError
    ENOSPC, and PostgreSQL's disk_full (SQLSTATE 53100), also inside SQLAlchemy's wrappers.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        if getattr(current, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        if getattr(current, "sqlstate", None) == _POSTGRES_DISK_FULL:
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return False
