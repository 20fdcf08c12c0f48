"""The console's fixtures and helpers, for its tests: settings for tests that need no service
(every target a port nothing listens on, `offline_settings`), a client holding a session of a given
principal (`signed_in`), and the sign-in form submitted with a token (`sign_in_with_token`). Taken
in by name by services/console/tests/conftest.py."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest
from preflight_common.auth import Principal
from preflight_console.config import Settings
from preflight_console.entrypoints.web import SESSION_COOKIE, Console, build_app
from starlette.testclient import TestClient

BASE = "http://127.0.0.1"


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


SignedIn = Callable[[Principal], AbstractContextManager[tuple[TestClient, str]]]


@pytest.fixture
def signed_in(offline_settings: Settings) -> SignedIn:
    """A client holding a session of the given principal (made on the server: signing in would ask
    intake) and the session's CSRF token."""

    @contextmanager
    def session_of(viewer: Principal) -> Iterator[tuple[TestClient, str]]:
        with TestClient(build_app(offline_settings), base_url=BASE) as client:
            console: Console = client.app.state.console  # type: ignore[attr-defined]
            cookie, session = console.sessions.create("pft_offline", viewer)
            client.cookies.set(SESSION_COOKIE, cookie)
            yield client, session.csrf

    return session_of


def sign_in_with_token(client: httpx.Client, token: str, origin: str) -> httpx.Response:
    """The answer to the sign-in form submitted with `token`, as a browser at `origin` submits it
    (with the form's CSRF token)."""
    form = client.get("/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None, form.text
    return client.post("/sign-in", data={"csrf": csrf.group(1), "token": token}, headers={"origin": origin})
