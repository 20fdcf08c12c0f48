"""preflight_common's fixtures (preflight_testkit.common) and `eventually` (preflight_testkit.waiting)."""

from preflight_testkit.common import consumer_worker, publisher, read_topic, span_exporter
from preflight_testkit.waiting import eventually_fixture

__all__ = ["consumer_worker", "eventually_fixture", "publisher", "read_topic", "span_exporter"]
