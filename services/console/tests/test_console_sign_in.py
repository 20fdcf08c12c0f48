"""Signing in with what cannot be a Preflight token: a clear 400 naming the field, no API call."""

from __future__ import annotations

import pytest
from preflight_console.config import Settings
from preflight_console.entrypoints.web import build_app
from preflight_testkit.console import sign_in_with_token
from starlette.testclient import TestClient


@pytest.mark.parametrize("token", ["pft_caf\u00e9", "pft_a\x01b"])
def test_a_token_grpc_cannot_send_is_refused_naming_the_field(offline_settings: Settings, token: str) -> None:
    # Nothing listens at the services' addresses: the token must be refused before any is asked.
    base = "http://127.0.0.1"
    with TestClient(build_app(offline_settings), base_url=base, raise_server_exceptions=False) as client:
        answer = sign_in_with_token(client, token, base)
    assert answer.status_code == 400
    assert "token: a Preflight token is printable ASCII" in answer.text
    assert "preflight_console_session" not in answer.headers.get("set-cookie", "")
