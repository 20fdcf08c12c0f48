"""Subscribe to Preflight's alerts topic as an infrastructure operator (copy and adapt this file).

    python examples/operator_subscriber.py --bootstrap kafka.example:9093 \\
        --organisation bank-a --sector finance [--group preflight-alerts-bank-a] [--from-beginning]

How it works:

* It joins a consumer group of its own (one group per operator organisation:
  every process of the group shares the partitions; another organisation's
  group gets its own copy of every alert).
* Every alert on `preflight.alerts.v1` is a CloudEvent (Kafka binary
  binding): `ce_type` is `preflight.notifier.v1.Alert`, `ce_id` is the alert id
  (deterministic: deduplicate on it, delivery is at-least-once), the value is
  the protobuf `Alert`.
* The `ce_audience` header lists who may receive the alert, already narrowed
  by its TLP: `org:<organisation>`, `sector:<sector>` (only when the TLP allows
  sector-wide sharing), `reviewers`. KEEP AN ALERT ONLY
  IF ONE OF YOUR TOKENS IS THERE; drop everything else unread. Respect the
  alert's TLP marking when you pass it on.
* Offsets are committed after an alert was handled, so a crash replays it
  rather than losing it.

It needs `kafka-python` and `preflight-proto` (the generated contracts).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from kafka import KafkaConsumer
from preflight.common.v1 import common_pb2
from preflight.notifier.v1 import events_pb2

ALERT_TYPE = "preflight.notifier.v1.Alert"


def header(headers: Sequence[tuple[str, bytes | None]], name: str) -> str:
    """The value of a record header ("" when absent)."""
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode()
    return ""


def is_for_me(headers: Sequence[tuple[str, bytes | None]], organisation: str, sectors: Iterable[str]) -> bool:
    """Whether an alert record is addressed to this organisation (by name, or by one of its sectors)."""
    if header(headers, "ce_type") != ALERT_TYPE:
        return False
    mine = {f"org:{organisation}", *(f"sector:{s}" for s in sectors)}
    return not mine.isdisjoint(header(headers, "ce_audience").split())


def alerts_for(
    records: Iterable[Any], organisation: str, sectors: Sequence[str]
) -> Iterator[events_pb2.Alert]:
    """The alerts among consumed records that are addressed to this organisation, decoded."""
    for record in records:
        if is_for_me(record.headers, organisation, sectors):
            yield events_pb2.Alert.FromString(record.value)


def as_json(alert: events_pb2.Alert) -> str:
    return json.dumps(
        {
            "alert_id": alert.alert_id,
            "kind": events_pb2.AlertKind.Name(alert.kind),
            "subject_id": alert.subject_id,
            "threshold": alert.threshold,
            "severity": alert.severity,
            "late": alert.late,
            "title": alert.title,
            "summary": alert.summary,
            "tlp": common_pb2.Tlp.Name(alert.tlp),
            "deadline": alert.deadline.ToJsonString(),
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the Preflight alerts addressed to one operator.")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port[,host:port]")
    parser.add_argument("--organisation", required=True, help="your organisation id (as in your token)")
    parser.add_argument("--sector", action="append", default=[], help="one of your sectors (repeatable)")
    parser.add_argument("--group", help="consumer group (default: preflight-alerts-<organisation>)")
    parser.add_argument("--topic", default="preflight.alerts.v1")
    parser.add_argument("--from-beginning", action="store_true", help="a new group starts at the oldest")
    args = parser.parse_args(argv)
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap.split(","),
        group_id=args.group or f"preflight-alerts-{args.organisation}",
        enable_auto_commit=False,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
    )
    seen: set[str] = set()
    try:
        while True:
            batch = consumer.poll(timeout_ms=1000)
            for alert in alerts_for((r for rs in batch.values() for r in rs), args.organisation, args.sector):
                if alert.alert_id not in seen:  # at-least-once: the same alert id may come twice
                    seen.add(alert.alert_id)
                    print(as_json(alert), flush=True)
            if batch:
                consumer.commit()
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()


if __name__ == "__main__":
    sys.exit(main())
