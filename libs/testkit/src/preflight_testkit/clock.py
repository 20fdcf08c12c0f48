"""Time in tests: a `preflight_common.clock.Clock` that moves only when told to, and protobuf
timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
"""Where a `ManualClock` starts unless told otherwise."""


class ManualClock:
    """A clock (`preflight_common.clock.Clock`) that moves only when told to: `now` is the instant
    it gives."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta = timedelta(0), **parts: float) -> datetime:
        """Move on by `delta` and by the `timedelta` `parts` (`advance(hours=1)`); the new instant."""
        self.now += delta + timedelta(**parts)
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


def ts(moment: datetime) -> Timestamp:
    """`moment` as a protobuf Timestamp."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
