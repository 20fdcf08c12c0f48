"""Wires the real adapters: database (migrated), the reviews and findings stores, policy, signer,
exporters and use cases."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from preflight_common.bus import SOURCES
from preflight_common.clock import Clock, utc_now
from preflight_common.config import ConfigError, secret
from preflight_common.db import make_engine, run_migrations
from preflight_common.topics import load_participants
from sqlalchemy import Engine

from preflight_clearinghouse.adapters.events import EventEncoder
from preflight_clearinghouse.adapters.exports import load_export_resources
from preflight_clearinghouse.adapters.exports.csaf import CsafExporter
from preflight_clearinghouse.adapters.exports.osv import export_osv
from preflight_clearinghouse.adapters.exports.stix import export_stix
from preflight_clearinghouse.adapters.imports import IMPORTERS, csaf_validators
from preflight_clearinghouse.adapters.signing import ReportSigner
from preflight_clearinghouse.adapters.store.base import Database
from preflight_clearinghouse.adapters.store.findings import SqlFindingsStore
from preflight_clearinghouse.adapters.store.reviews import SqlReviewsStore
from preflight_clearinghouse.config import ClearinghouseSettings
from preflight_clearinghouse.domain.findings.exports import Exporter, ExportFormat
from preflight_clearinghouse.domain.reviews.policy import PolicyError, RiskPolicy
from preflight_clearinghouse.domain.reviews.ports import Signer
from preflight_clearinghouse.service_layer.findings import FindingRegistry
from preflight_clearinghouse.service_layer.reviews import AuditCheckpoints, ReviewService

MIGRATIONS = Path(__file__).parent / "migrations"
SIGNING_KEY_VARIABLE = "PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY"


@dataclass(frozen=True)
class Components:
    """The wired parts of one clearinghouse process."""

    settings: ClearinghouseSettings
    engine: Engine
    reviews_store: SqlReviewsStore
    findings_store: SqlFindingsStore
    reviews: ReviewService
    registry: FindingRegistry
    checkpoints: AuditCheckpoints


def migrate(database_url: str) -> None:
    """Bring the database to the latest schema."""
    run_migrations(database_url, MIGRATIONS)


def load_policy(path: Path | None) -> RiskPolicy:
    """The risk policy in `path`, or the one shipped in the package; raises ConfigError."""
    try:
        text = (
            path.read_text(encoding="utf-8")
            if path
            else resources.files("preflight_clearinghouse.policy")
            .joinpath("risk-policy.yaml")
            .read_text("utf-8")
        )
        return RiskPolicy.from_mapping(yaml.safe_load(text))
    except OSError as exc:
        raise ConfigError(
            f"PREFLIGHT_CLEARINGHOUSE_POLICY_FILE: cannot read {path}: {exc.strerror}"
        ) from None
    except (yaml.YAMLError, PolicyError) as exc:
        raise ConfigError(f"risk policy {path or '(shipped)'}: {exc}") from None


def signer_from_env(settings: ClearinghouseSettings, *, create: bool = True) -> ReportSigner:
    """The key in the file PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE names, or the embedded default key
    file in the state dir (created when missing, unless `create` is False: then a missing file is a
    ConfigError). A key set as PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY is refused (`config.secret`)."""
    configured = secret(SIGNING_KEY_VARIABLE, "")
    if configured:
        return ReportSigner.from_key_text(configured, settings.signing_key_id)
    default = settings.state_dir / "signing-key.pem"
    if not create and not default.exists():
        raise ConfigError(f"{SIGNING_KEY_VARIABLE}_FILE is not set and there is no key file {default}")
    return ReportSigner.from_file_or_new(default, settings.signing_key_id)


def version() -> str:
    return importlib.metadata.version("preflight-clearinghouse")


def build(settings: ClearinghouseSettings, signer: Signer, *, clock: Clock = utc_now) -> Components:
    """Migrate the database and wire the stores, policy, exporters and use cases."""
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    database = Database(engine, EventEncoder(settings.topics, SOURCES["clearinghouse"]))
    reviews_store, findings_store = SqlReviewsStore(database), SqlFindingsStore(database)
    exporters: dict[ExportFormat, Exporter] = {
        ExportFormat.CSAF: CsafExporter(settings.publisher_name, settings.publisher_namespace, version()),
        ExportFormat.CSAF_2_0: CsafExporter(
            settings.publisher_name, settings.publisher_namespace, version(), csaf_version="2.0"
        ),
        ExportFormat.OSV: export_osv,
        ExportFormat.STIX: export_stix,
    }
    load_export_resources()
    # Imported once here, so that no ImportFinding request waits seconds for the csaf package.
    csaf_validators()
    registry = FindingRegistry(findings_store, clock, exporters, load_participants(), IMPORTERS)
    reviews = ReviewService(reviews_store, load_policy(settings.policy_file), signer, registry, clock)
    checkpoints = AuditCheckpoints(reviews_store, signer, clock)
    return Components(settings, engine, reviews_store, findings_store, reviews, registry, checkpoints)
