"""The embedded stack hands its children secrets as files (`<NAME>_FILE`, mode 0600 in the run
folder's `secrets/`), never in their environment: `secrets.env` and the issued tokens are the
values no child's environment may hold."""

from __future__ import annotations

import stat
from pathlib import Path
from types import ModuleType


def secret_values(keys: dict[str, str], tokens: dict[str, str]) -> set[str]:
    """Every secret value, and the key material inside `id:base64` key lists."""
    values = {value for name, value in keys.items() if not name.endswith("_ID")} | set(tokens.values())
    return values | {value.partition(":")[2] for value in values if ":" in value}


def test_no_service_of_the_stack_gets_a_secret_in_its_environment(
    tmp_path: Path, local_stack: ModuleType
) -> None:
    local = local_stack
    stack = local.Stack(tmp_path / "run")
    keys = stack.secrets()
    tokens = {"service": "pft_service-token-for-the-services", "lab": "pft_lab-token"}
    hidden = secret_values(keys, tokens)
    for service in local.SERVICES:
        env = local._service_env(stack, service, keys, tokens)
        for name, value in env.items():
            assert not any(secret in value for secret in hidden), f"{service}: {name} holds a secret"
        files = {name: Path(value) for name, value in env.items() if name.endswith("_FILE")}
        assert "PREFLIGHT_SERVICE_TOKEN_FILE" in files, service
        for name, path in files.items():
            if path.parent == stack.run_dir / "secrets":
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
                assert path.read_text().rstrip("\n") in hidden, name
    assert "PREFLIGHT_INTAKE_ENCRYPTION_KEYS_FILE" in local._service_env(stack, "intake", keys, tokens)
    clearinghouse = local._service_env(stack, "clearinghouse", keys, tokens)
    assert "PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE" in clearinghouse
    webhook_secret = stack.secret_file("webhook-sink.secret", keys["PREFLIGHT_NOTIFIER_WEBHOOK_SECRET_SINK"])
    routing = local._routing(18090, webhook_secret)
    assert not any(secret in routing for secret in hidden)
    assert f"secret_file: {webhook_secret}" in routing
