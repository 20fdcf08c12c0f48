"""Intake's fixtures (preflight_testkit.intake) and `eventually` (preflight_testkit.waiting)."""

from preflight_testkit.intake import (
    clearinghouse_stand_in,
    credential,
    intake,
    intake_factory,
    intake_processes,
    intake_settings,
    make_request,
    timestamp,
    topics,
)
from preflight_testkit.waiting import eventually_fixture

__all__ = [
    "clearinghouse_stand_in",
    "credential",
    "eventually_fixture",
    "intake",
    "intake_factory",
    "intake_processes",
    "intake_settings",
    "make_request",
    "timestamp",
    "topics",
]
