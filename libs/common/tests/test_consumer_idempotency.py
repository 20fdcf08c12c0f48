"""`claim_event`, the idempotent consumer's memory, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from preflight_common.db import make_engine
from preflight_common.idempotency import claim_event, processed_events_table
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, select

metadata = MetaData()
processed = processed_events_table(metadata)
effects = Table("effects", metadata, Column("id", Integer, primary_key=True), Column("event_id", String(200)))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    database = make_engine(db_url)
    metadata.create_all(database)
    try:
        yield database
    finally:
        database.dispose()


def apply(engine: Engine, consumer: str, event_id: str, *, fail: bool = False) -> bool:
    """Claim and apply in one transaction, as a handler does; `fail` aborts after the effect."""
    with engine.begin() as conn:
        if not claim_event(conn, processed, consumer, event_id):
            return False
        conn.execute(insert(effects).values(event_id=event_id))
        if fail:
            raise RuntimeError("the handler failed after its effect")
    return True


def effect_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(effects)).scalar_one())


def test_an_event_is_applied_once(engine: Engine) -> None:
    assert apply(engine, "notifier", "evt-1")
    assert not apply(engine, "notifier", "evt-1")
    assert effect_count(engine) == 1


def test_a_rolled_back_effect_releases_the_claim(engine: Engine) -> None:
    with pytest.raises(RuntimeError):
        apply(engine, "notifier", "evt-1", fail=True)
    assert effect_count(engine) == 0
    assert apply(engine, "notifier", "evt-1")
    assert effect_count(engine) == 1


def test_each_consumer_has_its_own_memory(engine: Engine) -> None:
    assert apply(engine, "notifier", "evt-1")
    assert apply(engine, "clearinghouse", "evt-1")
    assert effect_count(engine) == 2
