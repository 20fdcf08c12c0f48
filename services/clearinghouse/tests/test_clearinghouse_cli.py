"""The `preflight-clearinghouse` command: help, migrate, keygen, and verify-audit catching tampering."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from preflight_clearinghouse.adapters import tables
from preflight_clearinghouse.adapters.signing import ReportSigner, generate_key
from preflight_clearinghouse.bootstrap import signer_from_env
from preflight_clearinghouse.config import ClearinghouseSettings
from preflight_clearinghouse.entrypoints.cli import main as cli_main
from preflight_common.config import ConfigError
from preflight_testkit.clearinghouse import (
    REVIEWER,
    ManualClock,
    cli,
    make_components,
    report_input,
    truncate_audit_log,
)
from sqlalchemy import update

# Each test starts the console script as a process.
pytestmark = pytest.mark.slow


def test_help_names_every_command() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("serve", "migrate", "verify-audit", "keygen"):
        assert command in result.stdout


def test_keygen_prints_a_usable_signing_key() -> None:
    result = cli("keygen")
    assert result.returncode == 0
    key = result.stdout.strip()
    assert len(base64.b64decode(key)) == 32
    signer = ReportSigner.from_key_text(key)
    assert f"key id: {signer.key_id}" in result.stderr


def test_a_signing_key_is_base64_or_pem_text_and_errors_never_quote_the_value(tmp_path: Path) -> None:
    raw = base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()
    assert ReportSigner.from_key_text(raw + "\n").public_key
    pem = tmp_path / "signing.pem"
    issued = ReportSigner.from_file_or_new(pem)
    assert ReportSigner.from_key_text(pem.read_text()).public_key == issued.public_key
    short = base64.b64encode(b"k" * 31).decode()
    for bad in (short, str(pem), raw[:-4]):
        with pytest.raises(ConfigError, match="PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE") as refused:
            ReportSigner.from_key_text(bad)
        assert bad not in str(refused.value)


def test_the_signing_key_comes_from_its_file_never_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_key()
    settings = ClearinghouseSettings(state_dir=tmp_path / "state")
    monkeypatch.setenv("PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY", key)
    with pytest.raises(ConfigError, match="PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE") as refused:
        signer_from_env(settings)
    assert key not in str(refused.value)
    monkeypatch.delenv("PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY")
    key_file = tmp_path / "signing.key"
    key_file.write_text(key + "\n")
    monkeypatch.setenv("PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE", str(key_file))
    assert signer_from_env(settings).public_key == ReportSigner.from_key_text(key).public_key
    assert not (tmp_path / "state").exists()  # no default key was made beside the configured one


def test_the_service_token_in_the_environment_is_refused_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "pft_clearinghouse-token-never-in-the-environment"
    monkeypatch.setenv("PREFLIGHT_DATABASE_URL", f"sqlite:///{tmp_path / 'ch.db'}")
    monkeypatch.setenv("PREFLIGHT_CLEARINGHOUSE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PREFLIGHT_SERVICE_TOKEN", token)
    assert cli_main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "PREFLIGHT_SERVICE_TOKEN_FILE" in err
    assert token not in err
    assert not (tmp_path / "ch.db").exists()  # refused before anything started


def test_verify_audit_exits_1_when_an_entry_was_altered(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ch.db'}"
    env = {"PREFLIGHT_DATABASE_URL": url}
    assert cli("migrate", env=env).returncode == 0
    components = make_components(url, tmp_path, ReportSigner(Ed25519PrivateKey.generate()), ManualClock())
    components.registry.report(REVIEWER, report_input())
    components.registry.report(REVIEWER, report_input(title="another"))
    intact = cli("verify-audit", "--no-checkpoint", env=env)
    assert intact.returncode == 0 and "2 entries" in intact.stdout
    with components.engine.begin() as conn:
        conn.execute(update(tables.audit_log).where(tables.audit_log.c.seq == 1).values(details="{}"))
    components.engine.dispose()
    broken = cli("verify-audit", "--no-checkpoint", env=env)
    assert broken.returncode == 1 and "entry 1" in broken.stderr


def checkpoint_file(path: Path, body: bytes, signature: bytes) -> Path:
    """A checkpoint file: the base64 of a signed body and its signature."""
    encoded = {"body": base64.b64encode(body).decode(), "signature": base64.b64encode(signature).decode()}
    path.write_text(json.dumps(encoded))
    return path


def test_verify_audit_checks_against_a_signed_checkpoint_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ch.db'}"
    key = generate_key()
    key_file = tmp_path / "signing.key"
    key_file.write_text(key)
    env = {"PREFLIGHT_DATABASE_URL": url, "PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE": str(key_file)}
    components = make_components(url, tmp_path, ReportSigner.from_key_text(key), ManualClock())
    for title in ("one", "two", "three"):
        components.registry.report(REVIEWER, report_input(title=title))
    signed = components.checkpoints.publish_if_due()
    assert signed is not None
    checkpoint = checkpoint_file(tmp_path / "checkpoint.json", signed.body, signed.signature)
    intact = cli("verify-audit", "--checkpoint", str(checkpoint), env=env)
    assert intact.returncode == 0 and "matching the signed checkpoint" in intact.stdout

    truncate_audit_log(components.engine, keep=2)
    components.engine.dispose()
    assert cli("verify-audit", "--no-checkpoint", env=env).returncode == 0  # the chain alone looks intact
    truncated = cli("verify-audit", "--checkpoint", str(checkpoint), env=env)
    assert truncated.returncode == 1 and "truncated" in truncated.stderr

    other = ReportSigner.from_key_text(generate_key())
    forged = checkpoint_file(tmp_path / "forged.json", signed.body, other.sign(signed.body))
    refused = cli("verify-audit", "--checkpoint", str(forged), env=env)
    assert refused.returncode == 2 and "checkpoint_signature" in refused.stderr


def test_a_bad_setting_is_a_configuration_error_naming_the_variable(tmp_path: Path) -> None:
    result = cli("migrate", env={"PREFLIGHT_CLEARINGHOUSE_EMBARGO_INTERVAL": "-1"})
    assert result.returncode == 2 and "PREFLIGHT_CLEARINGHOUSE_EMBARGO_INTERVAL" in result.stderr
