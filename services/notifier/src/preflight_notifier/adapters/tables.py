"""The notifier's tables (SQLAlchemy Core). The Alembic migrations create exactly these."""

from __future__ import annotations

from preflight_common.db import UtcDateTime
from preflight_common.idempotency import processed_events_table
from preflight_common.outbox import outbox_table
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

Id = BigInteger().with_variant(Integer(), "sqlite")

# Literal (not bound) so that SQLite's planner can use the partial indexes below.
PENDING = text("status = 'pending'")
FLUSH_DUE = text("next_flush_at IS NOT NULL")

metadata = MetaData()

processed_events = processed_events_table(metadata)
outbox = outbox_table(metadata)

deadlines = Table(
    "deadlines",
    metadata,
    Column("deadline_id", String(300), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("due_at", UtcDateTime, nullable=True),
    Column("version", BigInteger, nullable=False),
    Column("source_version", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("audience", Text, nullable=False),
    Column("tlp", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("facts", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The W3C traceparent of the event that last scheduled the deadline: its reminders' alerts continue it.
    Column("traceparent", String(64), nullable=True),
)

reminders = Table(
    "reminders",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("deadline_id", String(300), ForeignKey("deadlines.deadline_id"), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("threshold", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    # pending → fired | superseded | cancelled
    Column("status", String(16), nullable=False),
    Column("fired_at", UtcDateTime, nullable=True),
    Column("alert_id", String(64), nullable=True),
    UniqueConstraint("deadline_id", "version", "threshold", name="uq_reminders_deadline_version_threshold"),
    # The scheduler's pass reads this index only: its cost follows the due reminders, not the pending total.
    Index("ix_reminders_pending_due", "due_at", sqlite_where=PENDING, postgresql_where=PENDING),
)

alerts = Table(
    "alerts",
    metadata,
    Column("sequence", Id, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("subject_id", String(200), nullable=False, index=True),
    Column("fired_at", UtcDateTime, nullable=False),
    # The full preflight.notifier.v1.Alert (contacts included: they never leave through the topic).
    Column("payload", LargeBinary, nullable=False),
)

acknowledgements = Table(
    "acknowledgements",
    metadata,
    Column("alert_id", String(64), ForeignKey("alerts.alert_id"), primary_key=True),
    Column("principal_id", String(200), primary_key=True),
    Column("organisation", String(200), nullable=False),
    Column("comment", Text, nullable=False),
    Column("acknowledged_at", UtcDateTime, nullable=False),
)

silences = Table(
    "silences",
    metadata,
    Column("silence_id", String(64), primary_key=True),
    Column("matchers", Text, nullable=False),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False, index=True),
    Column("created_by", String(200), nullable=False),
    Column("organisation", String(200), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

alert_groups = Table(
    "alert_groups",
    metadata,
    Column("group_key", String(64), primary_key=True),
    Column("receiver", String(200), nullable=False),
    Column("recipient", String(500), nullable=False),
    Column("group_labels", Text, nullable=False),
    Column("next_flush_at", UtcDateTime, nullable=True),
    Column("last_flush_at", UtcDateTime, nullable=True),
    Index("ix_alert_groups_flush", "next_flush_at", sqlite_where=FLUSH_DUE, postgresql_where=FLUSH_DUE),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), ForeignKey("alerts.alert_id"), nullable=False),
    Column("group_key", String(64), ForeignKey("alert_groups.group_key"), nullable=False),
    # pending → sent | silenced | inhibited
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivery_id", String(64), nullable=True),
    UniqueConstraint("group_key", "alert_id", name="uq_notifications_group_alert"),
    Index("ix_notifications_pending", "group_key", sqlite_where=PENDING, postgresql_where=PENDING),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("receiver", String(200), nullable=False),
    Column("recipient", String(500), nullable=False),
    Column("group_key", String(64), nullable=False),
    Column("alert_ids", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    # pending → delivered | failed
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    # For a pending delivery: when the next attempt may start (also the lease of an attempt in flight).
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=False),
    Index("ix_deliveries_pending_next", "next_attempt_at", sqlite_where=PENDING, postgresql_where=PENDING),
)

delivery_log = Table(
    "delivery_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", String(64), ForeignKey("deliveries.delivery_id"), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("receiver", String(200), nullable=False),
    Column("recipient", String(500), nullable=False),
    # started (written and committed before sending) → delivered | retry | failed (after)
    Column("status", String(16), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    UniqueConstraint("delivery_id", "attempt", name="uq_delivery_log_attempt"),
)
