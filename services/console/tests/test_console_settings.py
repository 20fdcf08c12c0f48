"""The settings page: any IANA zone, chosen for the session, shown with every time and in the foot
of every page; it returns only to a path on the console. No service is called."""

from __future__ import annotations

import re

from preflight_common.auth import Principal, Role
from preflight_console.config import Settings
from preflight_console.entrypoints.web import build_app
from preflight_testkit.console import BASE, SignedIn
from starlette.testclient import TestClient

LAB = Principal("lab@lab-a", Role.LAB, "lab-a")


def test_the_settings_page_offers_every_zone_by_region_and_comes_back(signed_in: SignedIn) -> None:
    with signed_in(LAB) as (client, csrf):
        page = client.get("/settings", params={"back": "/lab/submissions"})
        assert page.status_code == 200
        assert re.search(r'<optgroup label="Asia">.*<option value="Asia/Kolkata">', page.text, re.S)
        assert '<option value="UTC" selected>' in page.text
        assert 'name="back" value="/lab/submissions"' in page.text
        assert 'Times are shown in <strong id="shown-zone">UTC</strong>' in page.text
        # A zone the short list of the foot of each page never had.
        answer = client.post(
            "/time-zone",
            data={"csrf": csrf, "zone": "Australia/Adelaide", "back": "/lab/submissions"},
            headers={"origin": BASE},
            follow_redirects=False,
        )
        assert (answer.status_code, answer.headers["location"]) == (303, "/lab/submissions")
        again = client.get("/settings")
        assert '<option value="Australia/Adelaide" selected>' in again.text
        assert '<strong id="shown-zone">Australia/Adelaide</strong>' in again.text


def test_the_settings_page_returns_only_to_a_path_here(signed_in: SignedIn) -> None:
    with signed_in(LAB) as (client, _):
        for back in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
            assert 'name="back" value="/"' in client.get("/settings", params={"back": back}).text, back


def test_the_settings_page_needs_a_session(offline_settings: Settings) -> None:
    with TestClient(build_app(offline_settings), base_url=BASE) as client:
        answer = client.get("/settings", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in")
