"""Who may see and change which submission. Deny by default.

A lab sees and changes only its own organisation's submissions; a reviewer
sees every submission and changes none; a service (the benchmark asks whether a
submission was withdrawn before it starts a job) sees every submission and
changes none; a worker (one benchmark job's token) sees none and only resolves
its own job's credential; every other role sees none. A caller
who may read submissions but not this one must get the same answer as for a
submission that does not exist, so that its existence is not revealed.
"""

from __future__ import annotations

from dataclasses import dataclass

LAB = "lab"
REVIEWER = "reviewer"
SERVICE = "service"
WORKER = "worker"


@dataclass(frozen=True)
class Caller:
    """The authenticated principal, as the rules see it (role by name, e.g. "lab")."""

    principal_id: str
    role: str
    organisation: str


def may_submit(caller: Caller) -> bool:
    """Only labs submit models."""
    return caller.role == LAB


def may_read_submissions(caller: Caller) -> bool:
    """Whether the caller may read any submission at all (labs: their own; reviewers, services: all)."""
    return caller.role in (LAB, REVIEWER, SERVICE)


def may_read(caller: Caller, organisation: str) -> bool:
    """Whether the caller may read a submission of `organisation`."""
    if caller.role in (REVIEWER, SERVICE):
        return True
    return caller.role == LAB and bool(caller.organisation) and caller.organisation == organisation


def may_change(caller: Caller, organisation: str) -> bool:
    """Whether the caller may change (re-plan, withdraw) a submission of `organisation`."""
    return caller.role == LAB and bool(caller.organisation) and caller.organisation == organisation


def listing_scope(caller: Caller) -> str | None:
    """The organisation a listing is restricted to, or None for every organisation (reviewers, services).

    Callers who may not read submissions must be refused before asking.
    """
    if caller.role in (REVIEWER, SERVICE):
        return None
    if caller.role == LAB:
        return caller.organisation
    raise PermissionError(f"role {caller.role} may not list submissions")


def may_resolve_credentials(caller: Caller, job_id: str) -> bool:
    """Only the worker of job `job_id` may decrypt an endpoint credential for it: a `worker`
    principal whose id is that job (its token was issued for this one job by IssueJobToken).
    Service principals may not: a service token never reaches a worker."""
    return caller.role == WORKER and caller.principal_id == job_id
