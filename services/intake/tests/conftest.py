"""Intake's fixtures (preflight_testkit.intake)."""

from preflight_testkit.intake import (
    clearinghouse_stand_in,
    credential,
    eventually,
    intake,
    intake_factory,
    intake_processes,
    intake_settings,
    make_request,
    timestamp,
    topics,
)

__all__ = [
    "clearinghouse_stand_in",
    "credential",
    "eventually",
    "intake",
    "intake_factory",
    "intake_processes",
    "intake_settings",
    "make_request",
    "timestamp",
    "topics",
]
