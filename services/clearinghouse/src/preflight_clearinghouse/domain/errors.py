"""Errors the domain raises; the gRPC adapter maps each to one status code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (e.g. `affected_products[0].purl`) and what is wrong."""

    field: str
    description: str


class InvalidInput(ValueError):
    """The request is malformed (→ INVALID_ARGUMENT, naming every bad field)."""

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


class NotFound(LookupError):
    """No such object, or the caller may not see it (→ NOT_FOUND)."""


class PermissionDenied(PermissionError):
    """The caller's role may not do this (→ PERMISSION_DENIED)."""


class PreconditionFailed(ValueError):
    """The object's state does not allow the change, e.g. an illegal transition (→ FAILED_PRECONDITION)."""


class QuotaExceeded(ValueError):
    """The change would pass a bound on what an object may hold, e.g. a finding's attachments
    (→ RESOURCE_EXHAUSTED, naming the bound)."""


class RevisionConflict(ValueError):
    """The object changed since the caller read it (→ ABORTED)."""


class RefusedEvent(ValueError):
    """An event contradicting what is recorded (another organisation or model for a submission, an
    outcome for another submission's job): never applied, the consumer dead-letters it."""


class UnexplainedOutcome(LookupError):
    """An outcome the recorded plan does not explain yet (its job's BenchmarkJobRequested is not
    recorded, or its access window had not opened): the consumer waits a bounded time for the
    request or the ReleasePlanChanged that would explain it, then dead-letters the outcome."""


class Collector:
    """Accumulates field violations while a request is checked, then raises them all at once."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidInput(self.violations)
