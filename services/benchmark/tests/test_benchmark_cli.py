"""The console scripts: help, catalog, migrate, and configuration errors named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

# Each test starts the console scripts as processes.
pytestmark = pytest.mark.slow


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_every_console_script_has_help() -> None:
    for module in ("cli", "worker_cli", "reference_model_cli"):
        result = run(f"preflight_benchmark.entrypoints.{module}", "--help")
        assert result.returncode == 0 and "usage:" in result.stdout


def test_catalog_and_migrate(tmp_path: Path) -> None:
    catalog = run("preflight_benchmark.entrypoints.cli", "catalog")
    assert "cyber.vuln-detect 1.0.0" in catalog.stdout
    url = f"sqlite:///{tmp_path / 'b.db'}"
    migrated = run("preflight_benchmark.entrypoints.cli", "migrate", env={"PREFLIGHT_DATABASE_URL": url})
    assert migrated.returncode == 0, migrated.stderr
    assert {"jobs", "submissions", "outbox", "processed_events"} <= set(
        inspect(create_engine(url)).get_table_names()
    )


def test_bad_configuration_is_named() -> None:
    result = run(
        "preflight_benchmark.entrypoints.cli", "migrate", env={"PREFLIGHT_BENCHMARK_MAX_ATTEMPTS": "0"}
    )
    assert result.returncode == 2 and "PREFLIGHT_BENCHMARK_MAX_ATTEMPTS" in result.stderr


def test_a_worker_without_an_assignment_exits_with_the_configuration_status() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLIGHT_WORKER")}
    result = subprocess.run(
        [sys.executable, "-m", "preflight_benchmark.entrypoints.worker_cli"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 78 and "PREFLIGHT_WORKER_ASSIGNMENT" in result.stderr


def test_a_worker_with_an_unreadable_grpc_ca_exits_with_the_configuration_status(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLIGHT_WORKER")}
    token = tmp_path / "service.token"
    token.write_text("pft_unused\n")
    env |= {
        "PREFLIGHT_WORKER_ASSIGNMENT": "{}",
        "PREFLIGHT_SERVICE_TOKEN_FILE": str(token),
        "PREFLIGHT_GRPC_TLS_CA": str(tmp_path / "missing-ca.pem"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "preflight_benchmark.entrypoints.worker_cli"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 78 and "PREFLIGHT_GRPC_TLS_CA: cannot read" in result.stderr


def test_catalog_check_names_a_suite_that_could_not_run() -> None:
    shipped = run("preflight_benchmark.entrypoints.cli", "catalog", "--check")
    assert shipped.returncode == 0 and "every suite checks" in shipped.stdout, shipped.stderr
    published = Path(__file__).parent / "data" / "catalog_published.yaml"
    result = run(
        "preflight_benchmark.entrypoints.cli",
        "catalog",
        "--check",
        env={"PREFLIGHT_BENCHMARK_CATALOG_FILE": str(published)},
    )
    assert result.returncode == 2
    assert "suite cyber.cyberseceval2-interpreter-abuse.package: inspect-evals==0.26.0" in result.stderr
