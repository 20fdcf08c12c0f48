"""Profiles: the config file, the embedded stack's profile, the environment over both, and the
`Preflight` object built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from preflight.sdk import ConfigError, Preflight, Profile, load_profile

USER_CONFIG = """
profile = "staging"

[profiles.staging]
target = "preflight.example.gov:443"
token_file = "staging.token"
tls = true
timeout = 30

[profiles.staging.targets]
notifier = "alerts.example.gov:443"

[profiles.lab]
target = "user-file:1"
"""

STACK_CONFIG = """
profile = "lab"

[profiles.lab]
token_file = "tokens/lab.token"

[profiles.lab.targets]
intake = "127.0.0.1:1001"
clearinghouse = "127.0.0.1:1002"

[profiles.reviewer]
target = "127.0.0.1:2000"
"""


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment whose XDG config folder holds the user's config file, and a repository
    checkout (the current directory) whose run/stack/ holds the stack's."""
    config = tmp_path / "xdg" / "preflight"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(USER_CONFIG)
    (config / "staging.token").write_text("pft_staging\n")
    stack = tmp_path / "repo" / "run" / "stack"
    (stack / "tokens").mkdir(parents=True)
    (stack / "preflight.toml").write_text(STACK_CONFIG)
    (stack / "tokens" / "lab.token").write_text("pft_lab\n")
    (tmp_path / "repo" / "services").mkdir()
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def test_the_user_files_selected_profile_resolves_paths_and_keeps_the_token_out_of_its_repr(
    home: dict[str, str], tmp_path: Path
) -> None:
    profile = load_profile(environ=home, cwd=tmp_path / "repo" / "services")
    assert profile.name == "staging" and profile.tls and profile.timeout == 30
    assert profile.addresses() == {
        "intake": "preflight.example.gov:443",
        "clearinghouse": "preflight.example.gov:443",
        "notifier": "alerts.example.gov:443",
        "benchmark": "preflight.example.gov:443",
    }
    assert profile.token_file == str(tmp_path / "xdg" / "preflight" / "staging.token")
    assert profile.token() == "pft_staging"
    assert "pft_staging" not in repr(profile)


def test_a_token_in_an_environment_variable_is_refused_pointing_to_the_file_variable(
    home: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="PREFLIGHT_TOKEN_FILE") as refused:
        load_profile(environ={**home, "PREFLIGHT_TOKEN": "pft_secret"}, cwd=tmp_path)
    assert "pft_secret" not in str(refused.value)
    token_file = tmp_path / "env.token"
    token_file.write_text("pft_from_file\n")
    from_file = load_profile(environ={**home, "PREFLIGHT_TOKEN_FILE": str(token_file)}, cwd=tmp_path)
    assert from_file.token() == "pft_from_file"


def test_the_stack_profile_is_found_from_the_checkout_and_the_user_file_wins_a_shared_name(
    home: dict[str, str], tmp_path: Path
) -> None:
    nested = tmp_path / "repo" / "services"
    reviewer = load_profile("reviewer", environ=home, cwd=nested)
    assert reviewer.target == "127.0.0.1:2000" and reviewer.source.endswith("run/stack/preflight.toml")
    assert load_profile("lab", environ=home, cwd=nested).target == "user-file:1"
    # Without a user config file the stack's own `profile` selects.
    alone = load_profile(environ={"XDG_CONFIG_HOME": str(tmp_path / "none")}, cwd=nested)
    assert alone.name == "lab" and alone.token() == "pft_lab"
    assert alone.addresses() == {"intake": "127.0.0.1:1001", "clearinghouse": "127.0.0.1:1002"}
    elsewhere = {
        "XDG_CONFIG_HOME": str(tmp_path / "none"),
        "PREFLIGHT_STACK_DIR": str(tmp_path / "repo/run/stack"),
    }
    assert load_profile("reviewer", environ=elsewhere, cwd=tmp_path).target == "127.0.0.1:2000"


def test_the_environment_selects_and_overrides_the_profile(home: dict[str, str], tmp_path: Path) -> None:
    env = {
        **home,
        "PREFLIGHT_PROFILE": "reviewer",
        "PREFLIGHT_NOTIFIER_TARGET": "127.0.0.1:3000",
        "PREFLIGHT_TIMEOUT": "2.5",
        "PREFLIGHT_TLS": "1",
    }
    profile = load_profile(environ=env, cwd=tmp_path / "repo")
    assert profile.name == "reviewer" and profile.timeout == 2.5 and profile.tls
    assert profile.addresses()["notifier"] == "127.0.0.1:3000"
    assert profile.addresses()["intake"] == "127.0.0.1:2000"
    one = load_profile(environ={**home, "PREFLIGHT_TARGET": "gateway:443"}, cwd=tmp_path)
    assert set(one.addresses().values()) == {"gateway:443"}
    token_file = tmp_path / "other.token"
    token_file.write_text("pft_other")
    assert (
        load_profile(environ={**home, "PREFLIGHT_TOKEN_FILE": str(token_file)}, cwd=tmp_path).token()
        == "pft_other"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[profiles.default]\ntraget = 'x:1'\n", "unknown key traget"),
        ("[profiles.default.targets]\nconsole = 'x:1'\n", "unknown service console"),
        ("[profiles.default]\ntimeout = -1\n", "timeout: a positive number"),
        ("[profiles.default]\ntimeout = nan\n", "timeout: a positive number"),
        ("[profiles.default]\ntimeout = inf\n", "timeout: a positive number"),
        ("[profiles.default]\ntls = 'yes'\n", "tls: true or false"),
        ("profiles = 3\n", "`profiles` a table"),
        ("[profiles.default\n", "not valid TOML"),
    ],
)
def test_a_bad_config_file_names_the_place_to_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_profile(environ={"PREFLIGHT_CONFIG": str(path)}, cwd=tmp_path)


def test_a_named_profile_must_exist_but_the_default_may_be_absent(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path)}
    with pytest.raises(ConfigError, match="no profile staging"):
        load_profile("staging", environ=environ, cwd=tmp_path)
    assert load_profile(environ={**environ, "PREFLIGHT_TARGET": "x:1"}, cwd=tmp_path).target == "x:1"
    with pytest.raises(ConfigError, match="PREFLIGHT_TLS"):
        load_profile(environ={**environ, "PREFLIGHT_TLS": "yes"}, cwd=tmp_path)


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf", "soon"])
def test_a_call_deadline_that_is_not_a_positive_number_of_seconds_is_refused(
    tmp_path: Path, timeout: str
) -> None:
    with pytest.raises(ConfigError, match="PREFLIGHT_TIMEOUT: a positive number of seconds"):
        load_profile(environ={"XDG_CONFIG_HOME": str(tmp_path), "PREFLIGHT_TIMEOUT": timeout}, cwd=tmp_path)


def test_one_address_is_one_channel_and_a_service_without_an_address_says_what_to_set() -> None:
    with Preflight("127.0.0.1:1", token="pft_x") as one:
        assert (
            len({id(c._channel) for c in (one.intake, one.clearinghouse, one.notifier, one.benchmark)}) == 1
        )
    with Preflight.from_profile(Profile(targets={"intake": "127.0.0.1:1", "notifier": "127.0.0.1:2"})) as two:
        assert two.intake._channel is not two.notifier._channel
        with pytest.raises(ConfigError, match="PREFLIGHT_CLEARINGHOUSE_TARGET"):
            two.clearinghouse.get_finding("f-1")
    with pytest.raises(ConfigError, match="unknown service console"):
        Preflight(targets={"console": "127.0.0.1:3"})
