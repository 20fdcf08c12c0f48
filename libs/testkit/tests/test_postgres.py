"""The throwaway PostgreSQL server and the database fixtures (pg_url, db_url)."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa
from preflight_testkit.postgres import LocalPostgres, find_pg_bin
from preflight_testkit.skips import running_in_ci

# Each test starts PostgreSQL servers of its own.
pytestmark = pytest.mark.slow


def test_postgres_runs_a_query(postgres: LocalPostgres, pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1 + 1")).scalar_one() == 2
            assert conn.execute(sa.text("SHOW listen_addresses")).scalar_one() == "127.0.0.1"
            assert str(conn.execute(sa.text("SELECT inet_server_addr()")).scalar_one()) == "127.0.0.1"
    finally:
        engine.dispose()
    assert pg_url.startswith(f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/")


@pytest.mark.parametrize("attempt", [1, 2])
def test_pg_url_is_a_fresh_database_per_test(pg_url: str, attempt: int) -> None:
    engine = sa.create_engine(pg_url)
    try:
        # The same table in both runs: it would already exist if the database were shared.
        with engine.begin() as conn:
            assert sa.inspect(conn).get_table_names() == []
            conn.execute(sa.text("CREATE TABLE submissions (id text PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO submissions VALUES (:id)"), {"id": f"s{attempt}"})
    finally:
        engine.dispose()


def test_db_url_runs_on_both_backends(db_url: str, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.params["db_url"]
    engine = sa.create_engine(db_url)
    try:
        assert engine.dialect.name == backend
        metadata = sa.MetaData()
        events = sa.Table(
            "events",
            metadata,
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("payload", sa.LargeBinary, nullable=False),
        )
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(events.insert(), [{"id": "e1", "payload": b"\x00\x01"}])
        with engine.connect() as conn:
            assert conn.execute(sa.select(events.c.payload)).scalar_one() == b"\x00\x01"
    finally:
        engine.dispose()


def test_create_database_rejects_unsafe_names(postgres: LocalPostgres) -> None:
    for name in ["Upper", "drop table x", 'x"; --', "", "a" * 64, "1abc"]:
        with pytest.raises(ValueError, match="invalid database name"):
            postgres.create_database(name)


def test_stop_removes_the_cluster() -> None:
    if find_pg_bin() is None and not running_in_ci():
        pytest.skip("PostgreSQL server binaries not found")
    server = LocalPostgres()
    server.start()
    root, port = server.root, server.port
    assert root is not None and port is not None
    url = server.create_database("scratch")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "scratch"
    finally:
        engine.dispose()
    server.stop()
    assert not root.exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
