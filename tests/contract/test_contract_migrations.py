"""Every migration only expands the schema, so the previous release keeps working during an upgrade.

A release's migrations run (in its pre-upgrade hook Job) while the previous release's pods still
serve: each step must leave every table and column that code reads, and a column it adds to an
existing table must be nullable or have a server default (the previous release's inserts do
not name it). Dropping or renaming is a contraction, made by a migration of a later release
once no running release reads the thing (docs/architecture.md, "Schema changes").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from preflight_common.db import make_engine, run_migrations
from sqlalchemy import inspect

REPO = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.parent for p in REPO.glob("services/*/src/preflight_*/migrations/env.py"))
# Contractions a release makes, each once no running release reads what it removes:
# (migrations folder, revision) -> why it is safe. None today.
CONTRACTIONS: dict[tuple[str, str], str] = {}

Schema = dict[str, dict[str, tuple[bool, bool]]]


def _revisions(location: Path) -> list[str]:
    config = Config()
    config.set_main_option("script_location", str(location))
    return [r.revision for r in reversed(list(ScriptDirectory.from_config(config).walk_revisions()))]


def _schema(url: str) -> Schema:
    """Table -> column -> (nullable, has a server default)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            return {
                table: {
                    c["name"]: (bool(c["nullable"]), c.get("default") is not None)
                    for c in found.get_columns(table)
                }
                for table in found.get_table_names()
                if table != "alembic_version"
            }
    finally:
        engine.dispose()


def _contractions(before: Schema, after: Schema) -> list[str]:
    problems = [f"table {t} dropped" for t in before if t not in after]
    for table, columns in before.items():
        if table not in after:
            continue
        problems += [f"column {table}.{c} dropped" for c in columns if c not in after[table]]
        problems += [
            f"column {table}.{c} added NOT NULL without a server default"
            for c, (nullable, has_default) in after[table].items()
            if c not in columns and not nullable and not has_default
        ]
    return problems


def test_there_are_migrations_to_check() -> None:
    assert {p.parents[0].name for p in SERVICES} >= {
        "preflight_benchmark",
        "preflight_clearinghouse",
        "preflight_intake",
        "preflight_notifier",
    }


@pytest.mark.parametrize("location", SERVICES, ids=lambda p: p.parent.name)
def test_every_migration_step_only_expands_the_schema(location: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'schema.db'}"
    before: Schema = {}
    for revision in _revisions(location):
        run_migrations(url, location, revision)
        after = _schema(url)
        if (location.parent.name, revision) not in CONTRACTIONS:
            assert _contractions(before, after) == [], f"{location.parent.name} migration {revision}"
        before = after
