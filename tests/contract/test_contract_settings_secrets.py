"""No service's settings show a secret: the database URL (which carries the password read from
PREFLIGHT_DATABASE_PASSWORD_FILE) and any service token stay out of the settings' repr, so a log
line or a traceback that prints the settings never prints them."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

SETTINGS = {
    "intake": "preflight_intake.config:IntakeSettings",
    "benchmark": "preflight_benchmark.config:BenchmarkSettings",
    "clearinghouse": "preflight_clearinghouse.config:ClearinghouseSettings",
    "notifier": "preflight_notifier.config:NotifierSettings",
}


def _secret_file(folder: Path, name: str, value: str) -> str:
    path = folder / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_the_settings_never_show_the_database_password_or_the_service_token(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, name = SETTINGS[service].split(":")
    settings_type = getattr(importlib.import_module(module), name)
    monkeypatch.delenv("PREFLIGHT_DATABASE_URL_FILE", raising=False)
    monkeypatch.setenv("PREFLIGHT_DATABASE_URL", f"postgresql+psycopg://{service}@db.example/{service}")
    monkeypatch.setenv(
        "PREFLIGHT_DATABASE_PASSWORD_FILE", _secret_file(tmp_path, "db.password", "never-shown-db-password")
    )
    monkeypatch.setenv(
        "PREFLIGHT_SERVICE_TOKEN_FILE", _secret_file(tmp_path, "service.token", "never-shown-service-token")
    )
    settings = settings_type.from_env()
    assert "never-shown-db-password" in settings.database_url
    shown = repr(settings)
    assert "never-shown-db-password" not in shown
    assert "never-shown-service-token" not in shown
