"""Wires intake's real adapters: database (migrated), keyring, store, use cases, token registry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from preflight_common.auth import TokenStore
from preflight_common.bus import SOURCES
from preflight_common.clock import Clock, utc_now
from preflight_common.config import ConfigError, secret
from preflight_common.db import make_engine, run_migrations
from sqlalchemy import Engine

from preflight_intake.adapters import tables
from preflight_intake.adapters.crypto import KEYS_SECRET, KeyConfigError, Keyring
from preflight_intake.adapters.events import SubmissionEventEncoder
from preflight_intake.adapters.store import IntakeStore
from preflight_intake.config import IntakeSettings
from preflight_intake.service_layer.handlers import Intake

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Components:
    """The wired parts of one intake process."""

    settings: IntakeSettings
    engine: Engine
    store: IntakeStore
    intake: Intake
    tokens: TokenStore


def keyring_from_env() -> Keyring:
    """The encryption keys in the file PREFLIGHT_INTAKE_ENCRYPTION_KEYS_FILE names; raises ConfigError
    (never showing a key), also when the keys are set as PREFLIGHT_INTAKE_ENCRYPTION_KEYS."""
    try:
        return Keyring.parse(secret(KEYS_SECRET))
    except KeyConfigError as exc:
        raise ConfigError(str(exc)) from None


def migrate(database_url: str) -> None:
    """Bring the database to the latest schema."""
    run_migrations(database_url, MIGRATIONS)


def token_store(engine: Engine, settings: IntakeSettings) -> TokenStore:
    return TokenStore(engine, tables.api_tokens, timedelta(days=settings.token_lifetime_days))


def build(settings: IntakeSettings, keyring: Keyring, *, clock: Clock = utc_now) -> Components:
    """Migrate the database and wire the store, the use cases and the token registry."""
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    encoder = SubmissionEventEncoder(source=SOURCES["intake"], topic=settings.topics.submissions)
    store = IntakeStore(engine, keyring, encoder)
    intake = Intake(store, settings.policy, clock)
    return Components(settings, engine, store, intake, token_store(engine, settings))
