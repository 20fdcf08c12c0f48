"""The console's settings for tests that need no service: every target is a port nothing listens on."""

from __future__ import annotations

from pathlib import Path

import pytest
from preflight_console.config import Settings


@pytest.fixture
def offline_settings(tmp_path: Path) -> Settings:
    """Settings whose services are unreachable (a page that calls one answers 502)."""
    return Settings(
        listen="127.0.0.1:0",
        intake_target="127.0.0.1:1",
        clearinghouse_target="127.0.0.1:1",
        benchmark_target="127.0.0.1:1",
        notifier_target="127.0.0.1:1",
        session_key_file=tmp_path / "session.key",
        session_ttl=60.0,
        secure_cookies="auto",
    )
