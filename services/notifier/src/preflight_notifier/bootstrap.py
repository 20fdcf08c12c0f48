"""Wires the notifier's real adapters: database (migrated), routing file, clock, use cases, senders."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from preflight_common.bus import SOURCES
from preflight_common.clock import Clock, utc_now
from preflight_common.db import make_engine, run_migrations
from sqlalchemy import Engine

from preflight_notifier.adapters import codec
from preflight_notifier.adapters.dbclock import DatabaseClock
from preflight_notifier.adapters.email import EmailSender
from preflight_notifier.adapters.routing_file import load_routing
from preflight_notifier.adapters.store import UnitOfWork, prepare_engine
from preflight_notifier.adapters.webhook import WebhookSender
from preflight_notifier.config import NotifierSettings
from preflight_notifier.domain.routing import RoutingConfig
from preflight_notifier.service_layer.alerting import AlertSink
from preflight_notifier.service_layer.deadlines import DeadlineKeeper
from preflight_notifier.service_layer.deliverer import Deliverer, Senders
from preflight_notifier.service_layer.dispatcher import Dispatcher
from preflight_notifier.service_layer.scheduler import Scheduler

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(database_url: str) -> None:
    """Bring the database to the latest schema."""
    run_migrations(database_url, MIGRATIONS)


@dataclass(frozen=True)
class Components:
    """The wired parts of one notifier process."""

    settings: NotifierSettings
    engine: Engine
    routing: RoutingConfig
    clock: Clock
    keeper: DeadlineKeeper
    scheduler: Scheduler
    dispatcher: Dispatcher
    deliverer: Deliverer
    webhooks: WebhookSender


def build(
    settings: NotifierSettings, *, clock: Clock | None = None, rng: random.Random | None = None
) -> Components:
    """Migrate the database, read the routing file, and wire the use cases.

    The clock defaults to the database's on PostgreSQL (every process agrees on
    "now" when claiming due reminders) and to the host's on SQLite.
    """
    routing = load_routing(settings.routing_file)
    migrate(settings.database_url)
    engine = prepare_engine(make_engine(settings.database_url))
    if clock is None:
        clock = DatabaseClock(engine) if engine.dialect.name == "postgresql" else utc_now
    transaction = UnitOfWork(engine)
    sink = AlertSink(routing, settings.topics, SOURCES["notifier"], settings.participants, codec.alert_record)
    webhooks = WebhookSender(clock)
    senders = Senders(webhook=webhooks, email=EmailSender(settings.smtp, clock))
    return Components(
        settings=settings,
        engine=engine,
        routing=routing,
        clock=clock,
        keeper=DeadlineKeeper(transaction, routing, sink, codec, clock),
        scheduler=Scheduler(transaction, routing, sink, clock, settings.scheduler_batch),
        dispatcher=Dispatcher(transaction, routing, clock),
        deliverer=Deliverer(
            transaction, routing, senders, clock, rng=rng, lease=timedelta(seconds=settings.delivery_lease)
        ),
        webhooks=webhooks,
    )
