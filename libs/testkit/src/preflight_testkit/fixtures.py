"""pytest fixtures for tests that run against a real Kafka broker and real databases.

Loaded by the kit's pytest plugin (``preflight_testkit.plugin``): every test can use them.

==================  ========  ====================================================================
fixture             scope     value
==================  ========  ====================================================================
``kafka``           session   a started :class:`~preflight_common.localkafka.LocalKafka` on free
                              ports with its own temporary data, authenticating every client
                              and authorizing by ACL; stopped after the session
``kafka_settings``  session   the broker administrator's :class:`KafkaSettings` (SASL): what a
                              test uses to create topics, write records (a forged event is one
                              written with these) and read any topic
``kafka_bootstrap`` session   its ``"127.0.0.1:PORT"``
``kafka_principal`` function  ``(user, grants) -> KafkaSettings``: a SCRAM-SHA-512 principal with
                              a fresh password (in a file) and exactly the ACL ``grants``
                              (:class:`preflight_common.bus.Grant`) given
``unique_topic``    function  ``(prefix="test", partitions=1, config=None) -> str``: creates a
                              topic with a fresh name on ``kafka`` and returns the name once every
                              partition has a leader
``postgres``        session   a started :class:`~preflight_testkit.postgres.LocalPostgres`
``pg_url``          function  SQLAlchemy URL of a new, empty PostgreSQL database (dropped after)
``db_url``          function  parametrized ``sqlite`` (a file in ``tmp_path``) and ``postgresql``
                              (``pg_url``): a store test using it runs on both
==================  ========  ====================================================================

Without PostgreSQL binaries, ``postgres`` (and so ``pg_url`` and the ``postgresql`` case of
``db_url``) is skipped with the reason, except when the ``CI`` environment variable is set: then
it fails, so that CI never passes by skipping. There is no unauthenticated broker to fall back to.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest
from preflight_common.bus import Grant
from preflight_common.config import KafkaSettings
from preflight_common.localkafka import LocalKafka, find_repo_root

from preflight_testkit.postgres import LocalPostgres, find_pg_bin
from preflight_testkit.skips import skip_or_fail

__all__ = [
    "PrincipalFactory",
    "TopicFactory",
    "db_url",
    "kafka",
    "kafka_bootstrap",
    "kafka_principal",
    "kafka_settings",
    "pg_url",
    "postgres",
    "unique_topic",
]


class TopicFactory(Protocol):
    """Creates a topic with a fresh name and returns the name (see ``unique_topic``)."""

    def __call__(
        self, prefix: str = "test", partitions: int = 1, config: Mapping[str, str] | None = None
    ) -> str: ...


PrincipalFactory = Callable[[str, Iterable[Grant]], KafkaSettings]
"""Creates a principal with exactly the given grants (see ``kafka_principal``)."""


# ----------------------------------------------------------------------------------- Kafka


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[LocalKafka]:
    """A single-node KRaft broker for the whole session, on free 127.0.0.1 ports, with SASL and ACLs."""
    broker = LocalKafka(
        tmp_path_factory.mktemp("kafka"),
        repo_root=find_repo_root(pytestconfig.rootpath),
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_settings(kafka: LocalKafka) -> KafkaSettings:
    """The administrator's client settings for the session's broker."""
    return kafka.admin_settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_settings: KafkaSettings) -> str:
    """Bootstrap address (``127.0.0.1:PORT``) of the session's broker."""
    return kafka_settings.bootstrap_servers


@pytest.fixture
def kafka_principal(kafka_settings: KafkaSettings, tmp_path: Path) -> PrincipalFactory:
    """Factory ``(user, grants) -> KafkaSettings`` of a SCRAM-SHA-512 principal with those ACLs.

    The password is random and kept in a file under ``tmp_path``; calling it again for the same
    user changes the password and adds the new grants.
    """

    # Imported here, as kafka-python is in `unique_topic`: the plugin is loaded by every pytest
    # run, and kafka-python's import loads its protocol schemas.
    from preflight_testkit.clients import create_principal

    def create(user: str, grants: Iterable[Grant]) -> KafkaSettings:
        return create_principal(kafka_settings, user, grants, tmp_path / f"{user}.password")

    return create


def _topic_name(prefix: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9._-]", "-", prefix)[:200] or "test"
    return f"{cleaned}.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def unique_topic(kafka_settings: KafkaSettings) -> Iterator[TopicFactory]:
    """Factory ``(prefix="test", partitions=1, config=None) -> str``.

    Each call creates a topic named ``<prefix>.<12 hex digits>`` (characters outside
    ``[a-zA-Z0-9._-]`` in the prefix become ``-``) with ``partitions`` partitions, replication
    factor 1 and the given topic ``config``, waits until every partition has a leader, and
    returns the name. Topics are left on the broker (names never repeat).
    """
    from kafka.admin import KafkaAdminClient

    admin: Any = None

    def create(prefix: str = "test", partitions: int = 1, config: Mapping[str, str] | None = None) -> str:
        nonlocal admin
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        if admin is None:
            admin = KafkaAdminClient(client_id="preflight-tests", **kafka_settings.kafka_python_options())
        name = _topic_name(prefix)
        spec = {"num_partitions": partitions, "replication_factor": 1, "configs": dict(config or {})}
        admin.create_topics({name: spec}, timeout_ms=30_000, wait_for_metadata=True)
        return name

    try:
        yield create
    finally:
        if admin is not None:
            admin.close()


# ------------------------------------------------------------------------------ PostgreSQL


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A throwaway PostgreSQL server for the session (see module docstring for skip rules)."""
    if find_pg_bin() is None:
        reason = (
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin, $PREFLIGHT_PG_BIN or "
            "PATH); install the 'postgresql' package"
        )
        skip_or_fail(reason)
    server = LocalPostgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _database_name(node_name: str) -> str:
    base = re.sub(r"[^a-z0-9_]", "_", node_name.lower())[:40].strip("_") or "db"
    if not re.match(r"[a-z_]", base):
        base = f"t_{base}"
    return f"{base}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_url(postgres: LocalPostgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL (``postgresql+psycopg://...``) of a new empty database for this test.

    The database is dropped afterwards, closing any connection the test left open.
    """
    name = _database_name(request.node.name)
    url = postgres.create_database(name)
    try:
        yield url
    finally:
        postgres.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLAlchemy URL of an empty database: a SQLite file in ``tmp_path``, or a fresh PostgreSQL
    database (``pg_url``). Test ids end in ``[sqlite]`` / ``[postgresql]``; the PostgreSQL case
    carries the ``postgres`` marker.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
