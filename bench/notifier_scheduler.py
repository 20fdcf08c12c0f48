"""Scheduler cost with many pending reminders (SQLite): does a pass grow with the pending total?

    python bench/notifier_scheduler.py [--large 1000000] [--small 100000] [--due 10000]

In one run, on one database file:

1. 100,000 pending reminders (far in the future): time an idle pass (nothing due) and a pass
   firing 500 due reminders; time the same selection as a full scan (index disabled) — the
   baseline of what a pass would cost without the partial index.
2. Grow to 1,000,000 pending reminders and measure the same three things.
3. With 1,000,000 pending, make 10,000 reminders due and time how long the scheduler takes to
   fire them all (each firing records the alert, its outbox record and its notifications).

Rows are bulk-inserted with SQLite's recursive CTEs (seconds, not minutes). Bounded: about a
minute on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from preflight_notifier.adapters.routing_file import default_routing_path
from preflight_notifier.bootstrap import Components, build
from preflight_notifier.config import NotifierSettings
from preflight_testkit.clock import ManualClock
from sqlalchemy import Engine

NOW = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
REMINDERS_PER_DEADLINE = 5
AUDIENCE = json.dumps(
    {"organisations": [], "sectors": [], "lab_organisation": "lab-a", "contacts": [], "reviewers": True}
)
SELECTION = (
    "SELECT reminders.deadline_id FROM reminders {hint} WHERE status = 'pending' AND reminders.due_at <= ? "
    "ORDER BY reminders.due_at LIMIT 500"
)


def sqlite_time(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite (so text comparisons order correctly)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def add_deadlines(
    engine: Engine, prefix: str, first: int, last: int, due: datetime, per_deadline: int
) -> None:
    """Deadlines `<prefix>-<first..last>`, `per_deadline` pending reminders each, the first due at `due`."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO deadlines (deadline_id, kind, subject_id, due_at, version, source_version, state, "
            "audience, tlp, title, facts, updated_at) "
            "WITH RECURSIVE seq(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM seq WHERE n < ?) "
            "SELECT 'review/' || ? || '-' || n, 'review', ? || '-' || n, ?, 1, 1, 'active', ?, "
            "'amber_strict', '', '[]', ? FROM seq",
            (first, last, prefix, prefix, sqlite_time(due + timedelta(days=1)), AUDIENCE, sqlite_time(NOW)),
        )
        conn.exec_driver_sql(
            "INSERT INTO reminders (deadline_id, version, threshold, severity, due_at, status) "
            "WITH RECURSIVE seq(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM seq WHERE n < ?), "
            "thresholds(name, i) AS "
            "(VALUES ('T-7d', 0), ('T-3d', 1), ('T-1d', 2), ('T-0', 3), ('overdue+1d', 4)) "
            "SELECT 'review/' || ? || '-' || n, 1, thresholds.name, 'info', "
            "CASE WHEN thresholds.i = 0 THEN ? "
            "ELSE printf('2031-%02d-%02d 00:00:00.000000', 1 + n % 12, 1 + n % 28) END, "
            "'pending' FROM seq, thresholds WHERE thresholds.i < ?",
            (first, last, prefix, sqlite_time(due), per_deadline),
        )


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(notifier: Components, clock: ManualClock, label: str, batch: int) -> dict[str, float]:
    engine = notifier.engine
    clock.set(NOW)
    notifier.scheduler.run_pass()  # warm the caches once
    idle = statistics.median(timed(notifier.scheduler.run_pass) for _ in range(20))
    firing = []
    for round_ in range(3):
        add_deadlines(engine, f"{label}-batch{round_}", 1, batch, NOW - timedelta(minutes=1), per_deadline=1)
        started = time.perf_counter()
        fired = notifier.scheduler.run_pass().fired
        firing.append(time.perf_counter() - started)
        assert fired == batch, fired
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None

        def scan(hint: str) -> float:
            return statistics.median(
                timed(lambda: raw.execute(SELECTION.format(hint=hint), (sqlite_time(NOW),)).fetchall())
                for _ in range(5)
            )

        full_scan = scan("NOT INDEXED")
        indexed = scan("")
    return {"idle": idle, "firing": statistics.median(firing), "full_scan": full_scan, "indexed": indexed}


def pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.exec_driver_sql("SELECT COUNT(*) FROM reminders WHERE status = 'pending'").scalar_one()
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    args = parser.parse_args()
    per = REMINDERS_PER_DEADLINE
    with tempfile.TemporaryDirectory() as folder:
        clock = ManualClock(NOW)
        settings = NotifierSettings(
            database_url=f"sqlite:///{Path(folder) / 'bench.db'}", routing_file=default_routing_path()
        )
        notifier = build(settings, clock=clock)
        engine = notifier.engine
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {SELECTION.format(hint='')}", (sqlite_time(NOW),)
            ).all()
        print("scheduler selection plan:", "; ".join(str(row[-1]) for row in plan))

        started = time.perf_counter()
        add_deadlines(engine, "far", 1, args.small // per, NOW + timedelta(days=1000), per)
        print(f"inserted {pending(engine):,} pending reminders in {time.perf_counter() - started:.1f}s")
        small = measure(notifier, clock, "small", 500)
        small_pending = pending(engine)

        started = time.perf_counter()
        add_deadlines(
            engine, "far", args.small // per + 1, args.large // per, NOW + timedelta(days=1000), per
        )
        print(f"grew to {pending(engine):,} pending reminders in {time.perf_counter() - started:.1f}s")
        large = measure(notifier, clock, "large", 500)
        large_pending = pending(engine)

        print()
        header = ("pending reminders", "idle pass", "pass firing 500", "selection", "full scan")
        print("{:>20} {:>12} {:>16} {:>12} {:>12}".format(*header))
        for count, figures in ((small_pending, small), (large_pending, large)):
            print(
                f"{count:>20,} {figures['idle'] * 1000:>10.2f}ms {figures['firing'] * 1000:>14.1f}ms "
                f"{figures['indexed'] * 1000:>10.3f}ms {figures['full_scan'] * 1000:>10.1f}ms"
            )
        ratios = [large[k] / small[k] for k in ("idle", "firing", "indexed", "full_scan")]
        print("{:>20} {:>11.2f}x {:>15.2f}x {:>11.2f}x {:>11.2f}x".format("ratio (large/small)", *ratios))

        add_deadlines(engine, "due", 1, args.due, NOW - timedelta(hours=1), per_deadline=1)
        clock.set(NOW)
        started = time.perf_counter()
        fired = notifier.scheduler.catch_up().fired
        elapsed = time.perf_counter() - started
        print()
        print(
            f"fired {fired:,} due reminders among {pending(engine) + fired:,} pending in {elapsed:.2f}s "
            f"({fired / elapsed:,.0f} alerts/s; passes of {settings.scheduler_batch} deadlines, each alert "
            "recorded, queued in the outbox and routed in its reminder's transaction)"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
