"""The embedded stack's client profiles: after `up`, the SDK and the CLI reach every service as any
of the stack's principals with no flags, and no token is in the profile file itself."""

from __future__ import annotations

import stat
from pathlib import Path
from types import ModuleType

from preflight.sdk import Preflight, load_profile


def test_the_stack_writes_a_profile_per_principal_that_the_sdk_finds_from_the_checkout(
    tmp_path: Path, local_stack: ModuleType
) -> None:
    stack = local_stack.Stack(tmp_path / "repo" / "run" / "stack")
    tokens = {"lab": "pft_lab-token", "reviewer": "pft_reviewer-token", "operator_hospital": "pft_op"}
    local_stack._write_client_profiles(stack, tokens)

    written = (stack.run_dir / "preflight.toml").read_text()
    assert not any(token in written for token in tokens.values())
    for name in tokens:
        assert stat.S_IMODE((stack.run_dir / "tokens" / f"{name}.token").stat().st_mode) == 0o600
    nowhere = {"XDG_CONFIG_HOME": str(tmp_path / "no-user-config")}
    default = load_profile(environ=nowhere, cwd=tmp_path / "repo")
    assert default.name == "lab" and default.token() == "pft_lab-token"
    expected = {service: f"127.0.0.1:{stack.ports[service]}" for service in local_stack.SERVICES}
    assert default.addresses() == expected
    reviewer = load_profile("reviewer", environ=nowhere, cwd=tmp_path / "repo" / "deploy")
    assert reviewer.token() == "pft_reviewer-token"
    with Preflight.from_profile(reviewer) as deployment:
        assert deployment.notifier is not None and deployment.benchmark is not None
