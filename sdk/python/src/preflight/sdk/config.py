"""Where a deployment is and who you are to it: named profiles in a config file, environment
variables over them, and the profile the embedded stack writes.

    # ~/.config/preflight/config.toml ($XDG_CONFIG_HOME/preflight/config.toml)
    profile = "staging"                     # the profile used when none is named

    [profiles.staging]
    target = "preflight.example.gov:443"    # one address for every service ...
    token_file = "~/.config/preflight/staging.token"
    tls = true                              # or ca_file = "ca.pem" (implies TLS), cert_file/key_file (mTLS)
    timeout = 10                            # seconds per call

    [profiles.staging.targets]              # ... or one per service (overrides `target`)
    notifier = "alerts.example.gov:443"

Lookup order, the first that gives a setting wins:

1. what the caller passes in code (the CLI: its flags);
2. environment variables: `PREFLIGHT_TARGET`, `PREFLIGHT_<SERVICE>_TARGET` (`INTAKE`,
   `CLEARINGHOUSE`, `NOTIFIER`, `BENCHMARK`), `PREFLIGHT_TOKEN_FILE`, `PREFLIGHT_TLS` (`1`/`0`),
   `PREFLIGHT_CA_FILE`,
   `PREFLIGHT_CERT_FILE`, `PREFLIGHT_KEY_FILE`, `PREFLIGHT_TIMEOUT`;
3. the selected profile, named by `PREFLIGHT_PROFILE`, else by `profile` in the user's config
   file, else by `profile` in the embedded stack's file, else `default`. Profiles are looked up
   in the user's config file (`PREFLIGHT_CONFIG` if set, else the XDG path above) and then in the
   embedded stack's `preflight.toml` (in `PREFLIGHT_STACK_DIR` if set, else `run/stack/` in the
   current directory or the nearest parent that has one); the user's file wins for a name both
   define. A profile named explicitly must exist; `default` may be absent.

Relative paths in a file are relative to that file; `~` is expanded. A token is only ever read
from a file, never from an environment variable (a secret in the environment reaches every child
process and crash report): `PREFLIGHT_TOKEN` is refused with a `ConfigError` naming
`PREFLIGHT_TOKEN_FILE`. It is never printed: `Profile` leaves it out of its repr.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from preflight.sdk._common import DEFAULT_TIMEOUT, TLS

SERVICES = ("intake", "clearinghouse", "notifier", "benchmark")
"""The services a deployment has, as profiles and `Preflight` name them."""

STACK_PROFILE_FILE = "preflight.toml"
"""The client profile file the embedded stack writes into its run folder."""

_KEYS = frozenset({"target", "targets", "token_file", "tls", "ca_file", "cert_file", "key_file", "timeout"})


class ConfigError(ValueError):
    """The configuration is unusable; the message names the file or variable and what to fix."""


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def seconds(text: str) -> float:
    """`text` as a call deadline: a positive, finite number of seconds; ValueError otherwise."""
    value = float(text)
    if not _positive(value):
        raise ValueError(f"{text!r} is not a positive number of seconds")
    return value


@dataclass(frozen=True)
class Profile:
    """How to reach one deployment, as one principal."""

    name: str = "default"
    target: str = ""
    targets: Mapping[str, str] = field(default_factory=dict)
    token_file: str = ""
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    timeout: float = DEFAULT_TIMEOUT
    source: str = ""
    """The file the profile came from ("" when only the environment and defaults made it)."""

    def addresses(self) -> dict[str, str]:
        """Each service's address, for the services the profile can reach."""
        return {s: address for s in SERVICES if (address := self.targets.get(s) or self.target)}

    def token(self) -> str | None:
        """The bearer token: the token file's content, or None without a token file."""
        if not self.token_file:
            return None
        try:
            return Path(self.token_file).read_text().strip() or None
        except OSError as exc:
            raise ConfigError(f"token_file {self.token_file}: {exc.strerror}") from None

    def tls_settings(self) -> bool | TLS:
        """False (plaintext), True (TLS with the system's CAs) or the files' `TLS`."""
        if bool(self.cert_file) != bool(self.key_file):
            raise ConfigError(f"profile {self.name}: cert_file and key_file go together")
        if not (self.ca_file or self.cert_file):
            return self.tls
        return TLS(
            root_certificates=_read_bytes(self.ca_file),
            client_certificate=_read_bytes(self.cert_file),
            client_key=_read_bytes(self.key_file),
        )


def _read_bytes(path: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None


def user_config_file(environ: Mapping[str, str]) -> Path:
    """PREFLIGHT_CONFIG, else $XDG_CONFIG_HOME/preflight/config.toml, else ~/.config/preflight/config.toml."""
    if environ.get("PREFLIGHT_CONFIG"):
        return Path(environ["PREFLIGHT_CONFIG"]).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "preflight" / "config.toml"


def stack_config_file(environ: Mapping[str, str], cwd: Path | None = None) -> Path | None:
    """The embedded stack's profile file: in PREFLIGHT_STACK_DIR, or run/stack/ of the current
    directory or its nearest parent that has one; None when there is none."""
    if environ.get("PREFLIGHT_STACK_DIR"):
        candidate = Path(environ["PREFLIGHT_STACK_DIR"]).expanduser() / STACK_PROFILE_FILE
        return candidate if candidate.is_file() else None
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        candidate = folder / "run" / "stack" / STACK_PROFILE_FILE
        if candidate.is_file():
            return candidate
    return None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    if not isinstance(data.get("profile", ""), str) or not isinstance(data.get("profiles", {}), dict):
        raise ConfigError(f"{path}: `profile` is a name and `profiles` a table of profiles")
    return data


def _profile(name: str, entry: Any, path: Path) -> Profile:
    where = f"{path}: profiles.{name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not a table")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]} (known: {', '.join(sorted(_KEYS))})")
    targets = entry.get("targets", {})
    if not isinstance(targets, dict) or not all(isinstance(v, str) for v in targets.values()):
        raise ConfigError(f'{where}.targets: a table of service = "host:port"')
    for service in targets:
        if service not in SERVICES:
            raise ConfigError(f"{where}.targets: unknown service {service} (known: {', '.join(SERVICES)})")

    def text(key: str) -> str:
        value = entry.get(key, "")
        if not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: a string")
        return value

    def local(key: str) -> str:
        value = text(key)
        return str((path.parent / Path(value).expanduser()).resolve()) if value else ""

    tls, timeout = entry.get("tls", False), entry.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(tls, bool):
        raise ConfigError(f"{where}.tls: true or false")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not _positive(timeout):
        raise ConfigError(f"{where}.timeout: a positive number of seconds")
    return Profile(
        name=name,
        target=text("target"),
        targets=dict(targets),
        token_file=local("token_file"),
        tls=tls,
        ca_file=local("ca_file"),
        cert_file=local("cert_file"),
        key_file=local("key_file"),
        timeout=float(timeout),
        source=str(path),
    )


def _from_environment(profile: Profile, environ: Mapping[str, str]) -> Profile:
    if "PREFLIGHT_TOKEN" in environ:
        raise ConfigError(
            "PREFLIGHT_TOKEN: a token is never read from an environment variable; put it in a file "
            "(mode 0600) and name it with PREFLIGHT_TOKEN_FILE, --token-file or the profile's token_file"
        )
    changes: dict[str, Any] = {}
    for variable, key in (
        ("PREFLIGHT_TARGET", "target"),
        ("PREFLIGHT_TOKEN_FILE", "token_file"),
        ("PREFLIGHT_CA_FILE", "ca_file"),
        ("PREFLIGHT_CERT_FILE", "cert_file"),
        ("PREFLIGHT_KEY_FILE", "key_file"),
    ):
        if environ.get(variable):
            changes[key] = environ[variable]
    targets = {
        s: environ[f"PREFLIGHT_{s.upper()}_TARGET"]
        for s in SERVICES
        if environ.get(f"PREFLIGHT_{s.upper()}_TARGET")
    }
    if "target" in changes:
        # One address given in the environment replaces the profile's per-service ones too.
        changes["targets"] = targets
    elif targets:
        changes["targets"] = {**profile.targets, **targets}
    if environ.get("PREFLIGHT_TLS"):
        if environ["PREFLIGHT_TLS"] not in ("0", "1"):
            raise ConfigError("PREFLIGHT_TLS: 1 (TLS) or 0 (plaintext)")
        changes["tls"] = environ["PREFLIGHT_TLS"] == "1"
    if environ.get("PREFLIGHT_TIMEOUT"):
        try:
            changes["timeout"] = seconds(environ["PREFLIGHT_TIMEOUT"])
        except ValueError:
            raise ConfigError("PREFLIGHT_TIMEOUT: a positive number of seconds") from None
    return replace(profile, **changes)


def load_profile(
    name: str | None = None, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Profile:
    """The profile `name` (or the selected one, see the module doc) with the environment over it."""
    env = os.environ if environ is None else environ
    files = [user_config_file(env), stack_config_file(env, cwd)]
    configs = [(path, _read_config(path)) for path in files if path is not None and path.is_file()]
    explicit = name or env.get("PREFLIGHT_PROFILE") or ""
    chosen = explicit or next((str(c["profile"]) for _, c in configs if c.get("profile")), "default")
    for path, config in configs:
        if chosen in config.get("profiles", {}):
            return _from_environment(_profile(chosen, config["profiles"][chosen], path), env)
    if explicit or chosen != "default":
        looked = ", ".join(str(path) for path, _ in configs) or f"{files[0]} (absent)"
        raise ConfigError(f"no profile {chosen} in {looked}")
    return _from_environment(Profile(name=chosen), env)
