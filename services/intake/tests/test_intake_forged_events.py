"""Forged review events, written with the broker administrator's credentials, change nothing.

Intake moves a submission to REPORT_READY only for a report whose signature verifies with the
clearinghouse's published key and whose signed body is that report of that submission; anything
else is dead-lettered with its reason and the submission stays where it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from preflight.intake.v1 import intake_pb2
from preflight.sdk import Client
from preflight_common.auth import Role
from preflight_common.bus import SOURCES
from preflight_common.config import KafkaSettings
from preflight_common.producer import EventPublisher
from preflight_testkit.clients import dead_letter_reasons
from preflight_testkit.intake import ClearinghouseStandIn

STATUS = intake_pb2.SubmissionStatus


def test_a_report_that_does_not_verify_moves_nothing_and_is_dead_lettered(
    intake_factory: Callable[..., Any],
    clearinghouse_stand_in: ClearinghouseStandIn,
    kafka_settings: KafkaSettings,
    eventually: Callable[..., None],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    intake = intake_factory(clearinghouse_target=clearinghouse_stand_in.target)
    reviews = intake.settings.topics.reviews
    keys = clearinghouse_stand_in.keys
    publisher = EventPublisher(kafka_settings, source=SOURCES["clearinghouse"])
    try:
        with Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")) as client:
            sid = client.submit(make_request("lab-a")).submission.submission_id

            def report(**options: Any) -> Any:
                """A report naming the submission's lab, in its signed body and its event."""
                event = keys.report(sid, organisation="lab-a", **options)
                event.organisation = "lab-a"
                return event

            forged = {
                # Signed by some other key, under the clearinghouse's key id.
                "bogus signature": report(signer=Ed25519PrivateKey.generate()),
                # A genuine signature of another submission's report, announced for this one.
                "another submission's report": report(signed_for="sub-other"),
                # A key the clearinghouse never published.
                "unknown key": report(),
            }
            forged["unknown key"].signing_key_id = "ed25519-unknown"
            ids = {publisher.publish(reviews, event, subject=sid).id: name for name, event in forged.items()}

            reasons = {
                ids[event_id]: reason
                for event_id, reason in dead_letter_reasons(kafka_settings, reviews, set(ids)).items()
            }

            assert reasons == {
                "bogus signature": "poison event: the report's signature does not verify with the "
                "clearinghouse's key",
                "another submission's report": "poison event: the signed report has submission_id "
                f"'sub-other', not {sid!r}",
                "unknown key": "poison event: the clearinghouse has no signing key 'ed25519-unknown'",
            }
            assert client.get_submission(sid).status == STATUS.SUBMISSION_STATUS_RECEIVED

            # The genuine report moves it; intake asked for the key with a bearer token of its own.
            publisher.publish(reviews, report(), subject=sid)
            eventually(lambda: client.get_submission(sid).status == STATUS.SUBMISSION_STATUS_REPORT_READY)
    finally:
        publisher.close()
    assert keys.authorizations and all(value.startswith("Bearer ") for value in keys.authorizations)
