"""Fixtures for the clearinghouse's tests: migrated databases, wired use cases, and a real gRPC server
on loopback that authenticates through a real IdentityService (hosted here, as intake hosts it)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))

from clearinghouse_support import Api, LoopbackServer, ManualClock, make_components, start_api
from preflight_clearinghouse.adapters.signing import ReportSigner
from preflight_clearinghouse.bootstrap import Components

# Short consumer-group timings for the event consumer (read by preflight_common.consumer).
os.environ.setdefault("PREFLIGHT_KAFKA_SESSION_TIMEOUT", "6")
os.environ.setdefault("PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL", "1")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def signer() -> ReportSigner:
    return ReportSigner(Ed25519PrivateKey.generate())


@pytest.fixture
def components(db_url: str, tmp_path: Path, signer: ReportSigner, clock: ManualClock) -> Iterator[Components]:
    """Wired use cases on a migrated database (SQLite and PostgreSQL)."""
    built = make_components(db_url, tmp_path, signer, clock)
    yield built
    built.engine.dispose()


@pytest.fixture
def sqlite_components(tmp_path: Path, signer: ReportSigner, clock: ManualClock) -> Iterator[Components]:
    """Wired use cases on a migrated SQLite database."""
    built = make_components(f"sqlite:///{tmp_path / 'ch.db'}", tmp_path, signer, clock)
    yield built
    built.engine.dispose()


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    servers = LoopbackServer()
    yield servers
    servers.close()


@pytest.fixture
def api(loopback: LoopbackServer, tmp_path: Path, sqlite_components: Components) -> Iterator[Api]:
    """The clearinghouse API on loopback over SQLite, authenticated through a loopback IdentityService."""
    started = start_api(loopback, tmp_path, sqlite_components)
    yield started
    started.channel.close()
