"""The benchmark service's secrets come from files: the service token is refused in the
environment, and the local workers never get it (each attempt holds its own job's token)."""

from __future__ import annotations

import os
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


def test_local_workers_get_no_service_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = tmp_path / "service.token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.delenv("PREFLIGHT_SERVICE_TOKEN", raising=False)
    monkeypatch.setenv("PREFLIGHT_SERVICE_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_WORK_DIR", str(tmp_path / "work"))
    settings = BenchmarkSettings.from_env()
    assert settings.service_token == TOKEN
    env = local_worker_env(settings, "127.0.0.1:50052")
    # Each attempt gets its own job's token instead (test_benchmark_job_tokens.py).
    assert "PREFLIGHT_SERVICE_TOKEN_FILE" not in env
    assert not any(TOKEN in value for value in env.values())
    assert not any(
        TOKEN in path.read_text() for path in tmp_path.rglob("*") if path.is_file() and path != token_file
    )


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


@pytest.mark.parametrize(
    "variable", ["PREFLIGHT_BENCHMARK_WORKER_MEMORY", "PREFLIGHT_BENCHMARK_LOCAL_MEMORY"]
)
def test_a_local_memory_setting_that_is_not_a_quantity_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv("PREFLIGHT_SERVICE_TOKEN", raising=False)
    monkeypatch.setenv(variable, "plenty")
    with pytest.raises(ConfigError, match=rf"^{variable}: 'plenty' is not a quantity"):
        BenchmarkSettings.from_env()
