"""The OpenID sign-in's settings: a configured redirect URL must be the console's own callback."""

from __future__ import annotations

import pytest
from preflight_common.config import ConfigError
from preflight_console.config import OidcSettings

CALLBACK = "https://console.agency.example/sign-in/oidc/callback"


@pytest.fixture(autouse=True)
def provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLIGHT_CONSOLE_OIDC_ISSUER", "https://login.agency.example")
    monkeypatch.setenv("PREFLIGHT_CONSOLE_OIDC_CLIENT_ID", "preflight-console")


def test_the_redirect_url_defaults_to_each_requests_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFLIGHT_CONSOLE_OIDC_REDIRECT_URL", raising=False)
    settings = OidcSettings.from_env()
    assert settings is not None and settings.redirect_url == ""
    monkeypatch.setenv("PREFLIGHT_CONSOLE_OIDC_REDIRECT_URL", CALLBACK)
    settings = OidcSettings.from_env()
    assert settings is not None and settings.redirect_url == CALLBACK


@pytest.mark.parametrize(
    "url",
    [
        "https://console.agency.example/elsewhere",
        "https://console.agency.example/sign-in/oidc/callback?next=/",
        "https://someone@console.agency.example/sign-in/oidc/callback",
        "javascript:alert(1)//sign-in/oidc/callback",
    ],
)
def test_a_redirect_url_elsewhere_stops_the_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("PREFLIGHT_CONSOLE_OIDC_REDIRECT_URL", url)
    with pytest.raises(ConfigError, match="PREFLIGHT_CONSOLE_OIDC_REDIRECT_URL"):
        OidcSettings.from_env()
