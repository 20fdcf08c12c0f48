"""The command line every service shares: its options checked, configuration errors named."""

from __future__ import annotations

import argparse

import pytest
from preflight_common.cli import run_cli, service_parser
from preflight_common.config import ConfigError


def _refuse(args: argparse.Namespace) -> int:
    raise ConfigError("PREFLIGHT_X must be a number, got 'y'")


def test_an_unknown_log_level_is_a_usage_error_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser, _ = service_parser("preflight-x", "a service", serve="it")
    with pytest.raises(SystemExit) as exited:
        run_cli(parser, lambda args: 0, ["--log-level", "loud", "serve"])
    assert exited.value.code == 2
    assert "--log-level" in capsys.readouterr().err


def test_a_log_level_is_taken_in_any_case() -> None:
    parser, _ = service_parser("preflight-x", "a service", serve="it")
    assert (
        run_cli(parser, lambda args: 0 if args.log_level == "DEBUG" else 1, ["--log-level", "debug", "serve"])
        == 0
    )


def test_a_configuration_error_is_named_with_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    parser, _ = service_parser("preflight-x", "a service", serve="it", migrate=False)
    assert run_cli(parser, _refuse, ["serve"]) == 2
    assert (
        capsys.readouterr().err == "preflight-x: configuration error: PREFLIGHT_X must be a number, got 'y'\n"
    )
