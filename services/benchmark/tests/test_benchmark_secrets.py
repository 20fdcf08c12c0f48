"""The benchmark service's secrets come from files: the service token is refused in the
environment, and the local workers get it as a 0600 file, never as a variable."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from preflight_benchmark.bootstrap import local_worker_env
from preflight_benchmark.config import BenchmarkSettings
from preflight_common.config import ConfigError

TOKEN = "pft_benchmark-service-token-never-in-the-environment"


def test_the_service_token_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLIGHT_SERVICE_TOKEN", TOKEN)
    with pytest.raises(ConfigError, match="PREFLIGHT_SERVICE_TOKEN_FILE") as refused:
        BenchmarkSettings.from_env()
    assert TOKEN not in str(refused.value)


def test_local_workers_get_the_service_token_as_a_private_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "service.token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.delenv("PREFLIGHT_SERVICE_TOKEN", raising=False)
    monkeypatch.setenv("PREFLIGHT_SERVICE_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_WORK_DIR", str(tmp_path / "work"))
    settings = BenchmarkSettings.from_env()
    assert settings.service_token == TOKEN
    env = local_worker_env(settings, "127.0.0.1:50052")
    assert not any(TOKEN in value for value in env.values())
    handed = Path(env["PREFLIGHT_SERVICE_TOKEN_FILE"])
    assert handed.is_absolute()
    assert handed.read_text() == TOKEN + "\n"
    assert stat.S_IMODE(handed.stat().st_mode) == 0o600


@pytest.mark.slow  # starts the reference model's process
def test_the_reference_model_refuses_its_api_key_in_the_environment() -> None:
    key = "sk-ref-never-in-the-environment"
    env = {**os.environ, "PREFLIGHT_REFERENCE_MODEL_API_KEY": key}
    env.pop("PREFLIGHT_REFERENCE_MODEL_API_KEY_FILE", None)
    # Refused at start: it exits at once instead of serving (a timeout fails the test).
    refused = subprocess.run(
        [sys.executable, "-m", "preflight_benchmark.entrypoints.reference_model_cli", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 2
    assert "PREFLIGHT_REFERENCE_MODEL_API_KEY_FILE" in refused.stderr
    assert key not in refused.stderr + refused.stdout
