"""Migration runs: concurrent ones apply each migration once (db.run_migrations under
db.migration_lock), and an older release's runs leave a newer schema as it is.

A release's hook Job and a service replica (or two replicas) may migrate the same database at
once; on real PostgreSQL, both runs wait for the advisory lock, one applies the migration and the
other finds the schema current.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from preflight_common.db import MIGRATION_LOCK, make_engine, run_migrations

pytestmark = pytest.mark.slow

ENV_PY = """
from alembic import context
from preflight_common.db import make_engine

engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""

# Counts its applications: a second one would add a second row.
VERSION = """
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute("CREATE TABLE IF NOT EXISTS applications (n integer)")
    op.execute("INSERT INTO applications VALUES (1)")
"""


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV_PY)
    (folder / "script.py.mako").write_text("")
    (folder / "versions" / "0001_count.py").write_text(VERSION)
    return folder


def test_two_concurrent_runs_on_postgresql_wait_for_the_lock_and_apply_once(
    pg_url: str, scripts: Path
) -> None:
    engine = make_engine(pg_url, isolation_level="AUTOCOMMIT")
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            run_migrations(pg_url, scripts)
        except BaseException as exc:
            errors.append(exc)

    runs = [threading.Thread(target=migrate) for _ in range(2)]
    try:
        with engine.connect() as holder:
            holder.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")  # another run migrating
            for run in runs:
                run.start()
            waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            deadline = time.monotonic() + 60
            while holder.exec_driver_sql(waiting).scalar_one() < 2:
                assert time.monotonic() < deadline, "the runs did not wait for the migration lock"
                assert all(run.is_alive() for run in runs), f"a run went ahead: {errors}"
                time.sleep(0.05)
            assert not sa.inspect(holder).has_table("alembic_version")
            holder.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
        for run in runs:
            run.join(60)
        assert errors == []
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM applications").scalar_one() == 1
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == ["0001"]
    finally:
        engine.dispose()


def test_a_sqlite_database_is_migrated_under_a_file_lock_beside_it(tmp_path: Path, scripts: Path) -> None:
    database = tmp_path / "data" / "service.db"
    run_migrations(f"sqlite:///{database}", scripts)
    run_migrations(f"sqlite:///{database}", scripts)
    assert (tmp_path / "data" / "service.db.migrate.lock").exists()
    engine = make_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM applications").scalar_one() == 1
    engine.dispose()


# The next release's migration: it expands the schema.
NEXT_VERSION = """
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute("ALTER TABLE applications ADD COLUMN note text")
"""


def test_a_previous_release_starts_on_a_database_a_later_release_migrated(
    tmp_path: Path, scripts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """During a rolling upgrade a pod of the previous release may (re)start after the new
    release's migration Job ran: its migrations leave the newer schema as it is."""
    newer = tmp_path / "next-release"
    shutil.copytree(scripts, newer)
    (newer / "versions" / "0002_note.py").write_text(NEXT_VERSION)
    url = f"sqlite:///{tmp_path / 'service.db'}"
    run_migrations(url, newer)

    run_migrations(url, scripts)  # the previous release's scripts know only 0001

    assert "database schema 0002 is newer than these migrations" in caplog.text
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == ["0002"]
        assert conn.exec_driver_sql("SELECT count(*) FROM applications").scalar_one() == 1
    engine.dispose()
