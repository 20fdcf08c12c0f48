"""The `preflight` CLI (on the SDK) against a real intake server, and the `preflight-intake` admin
commands against a real database."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from preflight.sdk.cli import main as preflight
from preflight_common.auth import Role, TokenStore
from preflight_common.db import make_engine
from preflight_intake.adapters import tables
from preflight_intake.adapters.crypto import Keyring, new_key_entry
from preflight_intake.entrypoints.cli import main as preflight_intake

EXAMPLE_MANIFEST = Path(__file__).resolve().parents[3] / "examples" / "model.yaml"


def run(intake: Any, token: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = preflight(["--target", intake.target, *argv], out, err)
    return code, out.getvalue(), err.getvalue()


def use_token(monkeypatch: pytest.MonkeyPatch, folder: Path, token: str) -> None:
    """Makes `token` the CLI's, through PREFLIGHT_TOKEN_FILE (a token is never an environment variable)."""
    token_file = folder / "cli.token"
    token_file.write_text(token)
    monkeypatch.setenv("PREFLIGHT_TOKEN_FILE", str(token_file))


@pytest.fixture
def lab(intake: Any, monkeypatch: pytest.MonkeyPatch, credential: str, tmp_path: Path) -> str:
    token = intake.token("ada", Role.LAB, "example-lab")
    use_token(monkeypatch, tmp_path, token)
    monkeypatch.setenv("EXAMPLE_LAB_API_KEY", credential)
    return token


def test_submit_status_list_update_withdraw_and_watch(intake: Any, lab: str, credential: str) -> None:
    code, out, err = run(intake, lab, "submit", str(EXAMPLE_MANIFEST))
    assert code == 0, err
    assert "status      RECEIVED" in out
    assert credential not in out + err
    sid = out.split("\n")[0].split()[-1]

    code, again, err = run(intake, lab, "submit", str(EXAMPLE_MANIFEST))
    assert code == 0 and sid in again
    assert "already submitted" in err

    code, out, _ = run(intake, lab, "--json", "status", sid)
    assert code == 0
    shown = json.loads(out)
    assert shown["submission_id"] == sid
    assert shown["access"]["endpoint"]["credential_ref"].startswith("cred-")

    code, out, _ = run(intake, lab, "list", "--status", "RECEIVED")
    assert code == 0 and sid in out

    code, out, err = run(intake, lab, "update-release", sid, "--release", "+25d", "--reason", "slipped")
    assert code == 0, err
    assert "version 2" in out

    code, out, _ = run(intake, lab, "withdraw", sid, "--reason", "cancelled")
    assert code == 0 and "WITHDRAWN" in out

    code, out, _ = run(intake, lab, "--json", "watch", sid)
    assert code == 0
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["SUBMISSION_STATUS_WITHDRAWN"]


def test_errors_say_what_to_fix_and_exit_non_zero(intake: Any, lab: str, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        EXAMPLE_MANIFEST.read_text()
        .replace('end: "+20d"', 'end: "+40d"')
        .replace("example-frontier\n", "x\n")
    )
    code, out, err = run(intake, lab, "submit", str(manifest))
    assert code == 1 and out == ""
    assert "INVALID_ARGUMENT" in err
    assert "  - access_window.end: must not be after planned_release" in err

    code, _, err = run(intake, lab, "status", "00000000-0000-4000-8000-000000000000")
    assert code == 1 and "NOT_FOUND" in err

    code, _, err = run(
        intake, lab, "update-release", "00000000-0000-4000-8000-000000000000", "--release", "soon"
    )
    assert code == 2 and "--release" in err

    manifest.write_text("model: {name: x}\nplanned_release: +3d\n")
    code, _, err = run(intake, lab, "submit", str(manifest))
    assert code == 2 and "manifest error: model.developer: is required" in err

    code, _, err = run(intake, "", "--token-file", str(tmp_path / "missing"), "list")
    assert code == 2 and "cannot read" in err


def test_a_wrong_token_is_reported_with_a_hint(
    intake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_token(monkeypatch, tmp_path, "pft_wrong")
    code, _, err = run(intake, "", "list")
    assert code == 1
    assert "UNAUTHENTICATED" in err and "PREFLIGHT_TOKEN_FILE" in err


def test_a_token_in_the_environment_is_refused_before_any_call(
    intake: Any, monkeypatch: pytest.MonkeyPatch, lab: str
) -> None:
    monkeypatch.setenv("PREFLIGHT_TOKEN", lab)
    code, out, err = run(intake, "", "list")
    assert code == 2 and out == ""
    assert "PREFLIGHT_TOKEN_FILE" in err and lab not in err


def test_admins_issue_and_revoke_tokens_from_the_cli(
    intake: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_token(monkeypatch, tmp_path, intake.token("root", Role.ADMIN, "preflight"))
    code, out, err = run(
        intake, "", "token", "create", "--principal-id", "bob", "--role", "lab", "--organisation", "lab-b"
    )
    assert code == 0, err
    issued = out.strip()
    token_id = err.split("token id:")[1].split()[0]
    use_token(monkeypatch, tmp_path, issued)
    assert run(intake, "", "list")[0] == 0
    use_token(monkeypatch, tmp_path, intake.token("root", Role.ADMIN, "preflight"))
    assert run(intake, "", "token", "revoke", token_id)[0] == 0
    use_token(monkeypatch, tmp_path, issued)
    assert run(intake, "", "list")[0] == 1


def test_bootstrap_admin_token_is_written_to_the_database_and_printed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    monkeypatch.setenv("PREFLIGHT_DATABASE_URL", url)
    assert preflight_intake(["token", "create", "--role", "admin", "--organisation", "preflight"]) == 0
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert token.startswith("pft_") and token not in captured.err
    engine = make_engine(url)
    resolved = TokenStore(engine, tables.api_tokens).resolve(token)
    assert resolved is not None
    principal, token_id, _ = resolved
    assert (principal.principal_id, principal.role, principal.organisation) == (
        "admin@preflight",
        Role.ADMIN,
        "preflight",
    )
    assert preflight_intake(["token", "revoke", token_id]) == 0
    assert TokenStore(engine, tables.api_tokens).resolve(token) is None
    assert preflight_intake(["token", "revoke", token_id]) == 1
    engine.dispose()


def test_serve_without_encryption_keys_fails_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PREFLIGHT_DATABASE_URL", f"sqlite:///{tmp_path / 'intake.db'}")
    monkeypatch.delenv("PREFLIGHT_INTAKE_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("PREFLIGHT_INTAKE_ENCRYPTION_KEYS_FILE", raising=False)
    assert preflight_intake(["serve"]) == 2
    assert "PREFLIGHT_INTAKE_ENCRYPTION_KEYS_FILE is required" in capsys.readouterr().err
    monkeypatch.setenv("PREFLIGHT_INTAKE_MAX_WINDOW_DAYS", "thirty")
    assert preflight_intake(["serve"]) == 2
    assert "PREFLIGHT_INTAKE_MAX_WINDOW_DAYS" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["preflight", "--help"], ["preflight-intake", "--help"]])
def test_console_scripts_are_installed_and_start(command: list[str]) -> None:
    bindir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bindir / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_keygen_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert preflight_intake(["keygen", "--key-id", "k2026"]) == 0
    keyring = Keyring.parse(capsys.readouterr().out.strip())
    assert keyring.active_key_id == "k2026"


def test_reencrypt_reseals_with_the_active_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PREFLIGHT_DATABASE_URL", f"sqlite:///{tmp_path / 'intake.db'}")
    keys = tmp_path / "encryption.keys"
    keys.write_text(f"{new_key_entry('k2')},{new_key_entry('k1')}\n")
    monkeypatch.setenv("PREFLIGHT_INTAKE_ENCRYPTION_KEYS_FILE", str(keys))
    assert preflight_intake(["reencrypt"]) == 0
    assert "re-encrypted 0 credential(s) with key k2" in capsys.readouterr().out


def test_encryption_keys_in_the_environment_are_refused_without_quoting_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PREFLIGHT_DATABASE_URL", f"sqlite:///{tmp_path / 'intake.db'}")
    entry = new_key_entry("k1")
    monkeypatch.setenv("PREFLIGHT_INTAKE_ENCRYPTION_KEYS", entry)
    assert preflight_intake(["reencrypt"]) == 2
    err = capsys.readouterr().err
    assert "PREFLIGHT_INTAKE_ENCRYPTION_KEYS_FILE" in err
    assert entry.partition(":")[2] not in err
