"""Sessions outlive a restart of the console: a second application on the same session file
and key takes the first one's cookie (and the zone chosen under it); sign-out still ends it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from preflight_common.auth import Principal, Role
from preflight_console.config import Settings
from preflight_console.entrypoints.web import SESSION_COOKIE, Console, build_app
from preflight_testkit.console import BASE
from starlette.testclient import TestClient

LAB = Principal("lab@lab-a", Role.LAB, "lab-a")


def test_a_session_survives_a_restart_of_the_console_until_sign_out(
    offline_settings: Settings, tmp_path: Path
) -> None:
    settings = replace(offline_settings, session_db=tmp_path / "console" / "sessions.sqlite")
    with TestClient(build_app(settings), base_url=BASE) as before:
        console: Console = before.app.state.console  # type: ignore[attr-defined]
        cookie, session = console.sessions.create("pft_lab", LAB)
        before.cookies.set(SESSION_COOKIE, cookie)
        chosen = before.post(
            "/time-zone",
            data={"csrf": session.csrf, "zone": "Asia/Tokyo", "back": "/settings"},
            headers={"origin": BASE},
            follow_redirects=False,
        )
        assert chosen.status_code == 303
    with TestClient(build_app(settings), base_url=BASE) as after:
        after.cookies.set(SESSION_COOKIE, cookie)
        page = after.get("/settings", follow_redirects=False)
        assert page.status_code == 200, "the restarted console still knows the session"
        assert '<strong id="shown-zone">Asia/Tokyo</strong>' in page.text
        signed_out = after.post(
            "/sign-out", data={"csrf": session.csrf}, headers={"origin": BASE}, follow_redirects=False
        )
        assert signed_out.status_code == 303
    with TestClient(build_app(settings), base_url=BASE) as later:
        later.cookies.set(SESSION_COOKIE, cookie)
        assert later.get("/settings", follow_redirects=False).status_code == 303, "signed out for good"
