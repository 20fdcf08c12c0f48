"""Field helpers shared by every service's codec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from preflight_common.fields import timestamp


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 7, 10, 16, 20, 123456, tzinfo=UTC),
        datetime(2026, 12, 7, 11, 16, 20, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_timestamp_is_the_one_protobuf_makes(moment: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(moment.astimezone(UTC))
    assert timestamp(moment) == expected
    assert timestamp(moment).ToDatetime(tzinfo=UTC) == moment
