"""Consumers: the benchmark plans a submission's jobs from the submissions topic.

- `preflight.submissions.v1`: SubmissionReceived (fan the suites out into jobs),
  SubmissionWithdrawn (cancel them), ReleasePlanChanged (move their access window).

Each event is applied once and its offset is committed only after the planner's transaction
(see `preflight_common.consumer` and `service_layer.planner`).
"""

from __future__ import annotations

from preflight_common.consumer import Route

from preflight_benchmark.config import BenchmarkSettings
from preflight_benchmark.service_layer.planner import REGISTRY, Planner


def routes(settings: BenchmarkSettings, planner: Planner) -> list[Route]:
    """The benchmark's one consumed topic, applied by the planner."""
    return [Route(settings.topics.submissions, REGISTRY, planner.handle)]
