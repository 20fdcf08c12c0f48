"""Forged submission events, written with the broker administrator's credentials, change nothing.

The planner accepts a submission event only from intake (the topic's owner) and only when it
agrees with what is recorded of the submission: a withdrawal naming another organisation, or
one from another service, is dead-lettered with its reason and no job is cancelled; a second
SubmissionReceived naming another organisation is dead-lettered and plans nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from preflight.benchmark.v1 import events_pb2
from preflight.intake.v1 import events_pb2 as intake_events
from preflight_benchmark.domain.jobs import JobStatus
from preflight_common.bus import SOURCES
from preflight_common.envelope import encode_event
from preflight_testkit.benchmark import BenchmarkProcess, IntakeStandIn, submission
from preflight_testkit.clients import dead_letter_reasons


def planned_for_tomorrow(
    service: BenchmarkProcess, intake: IntakeStandIn
) -> tuple[intake_events.SubmissionReceived, list[events_pb2.BenchmarkJobRequested]]:
    """A submission of lab-a published and its four jobs planned. Its window opens tomorrow, so
    the jobs wait, pending, and no model is needed."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    received = submission(
        base_url="https://lab-a.example/v1",
        model_name="frontier",
        credential_ref=intake.add_credential("sk-lab-a"),
        start=tomorrow,
        end=tomorrow + timedelta(days=7),
    )
    service.publish(received)
    planned = service.tap.requested(received.submission_id, 4, 60)
    return received, planned


def test_a_forged_withdrawal_cancels_no_job_and_is_dead_lettered(
    service: BenchmarkProcess, intake: IntakeStandIn
) -> None:
    received, planned = planned_for_tomorrow(service, intake)

    # Intake's source, another lab's organisation: the broker would let an administrator write it.
    as_intake = service.publish(
        intake_events.SubmissionWithdrawn(
            submission_id=received.submission_id, organisation="lab-rival", reason="forged"
        )
    )
    # The right organisation, from a service that does not own the submissions topic.
    from_clearinghouse = encode_event(
        intake_events.SubmissionWithdrawn(
            submission_id=received.submission_id, organisation=received.organisation, reason="forged"
        ),
        source=SOURCES["clearinghouse"],
        subject=received.submission_id,
    )
    service.publisher.publish_record(service.settings.topics.submissions, from_clearinghouse)
    assert from_clearinghouse.attributes is not None
    foreign = from_clearinghouse.attributes.id

    reasons = dead_letter_reasons(service.admin, service.settings.topics.submissions, {as_intake, foreign})

    assert reasons[as_intake] == (
        f"poison event: submission {received.submission_id} belongs to another organisation than "
        "'lab-rival'; its organisation is set once"
    )
    assert reasons[foreign] == (
        f"source preflight.clearinghouse may not publish on {service.settings.topics.submissions}"
    )
    store = service.components.store
    assert not store.is_withdrawn(received.submission_id)
    assert {store.get(job.job_id).status for job in planned} == {JobStatus.PENDING}
    assert service.tap.terminal(received.submission_id) == []


def test_a_re_announced_submission_naming_another_lab_plans_nothing_and_is_dead_lettered(
    service: BenchmarkProcess, intake: IntakeStandIn
) -> None:
    received, planned = planned_for_tomorrow(service, intake)

    # Intake's source, the same submission and model, a rival lab: the first organisation stands.
    rival = intake_events.SubmissionReceived()
    rival.CopyFrom(received)
    rival.organisation = "lab-rival"
    re_announced = service.publish(rival)

    reasons = dead_letter_reasons(service.admin, service.settings.topics.submissions, {re_announced})

    assert reasons[re_announced] == (
        f"poison event: submission {received.submission_id} belongs to another organisation than "
        "'lab-rival'; its organisation is set once"
    )
    store = service.components.store
    assert {store.get(job.job_id).organisation for job in planned} == {received.organisation}
    assert len(service.tap.of(events_pb2.BenchmarkJobRequested, received.submission_id)) == 4
