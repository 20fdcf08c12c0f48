"""The whole process against the real broker: agents consume, the outbox relay publishes, gRPC serves.

Four BenchmarkCompleted events produce one signed ReviewReportReady with the policy's tier; a
replay of every event changes nothing; a validated candidate finding is published on the findings
topic with its audience and without the lab's identity; an event that names no job is
dead-lettered.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import Message
from kafka import KafkaConsumer
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight.common.v1 import common_pb2
from preflight.sdk.reports import verify_signature
from preflight_clearinghouse.adapters.signing import ReportSigner, generate_key
from preflight_clearinghouse.config import ClearinghouseSettings
from preflight_clearinghouse.entrypoints.server import serve
from preflight_common.auth import Principal, Role
from preflight_common.bus import SOURCES, owner_of, service_grants, service_principal
from preflight_common.config import KafkaSettings, Topics
from preflight_common.db import make_engine
from preflight_common.envelope import EventRegistry, decode_record, encode_event, headers_dict
from preflight_common.producer import EventPublisher
from preflight_common.topics import TopicSpec, ensure_topics
from preflight_testkit.clearinghouse import (
    SUITES,
    LoopbackServer,
    candidate,
    cli,
    completed,
    job_requested,
    plan_ended,
    start_identity,
    submission_received,
    truncate_audit_log,
)
from preflight_testkit.fixtures import PrincipalFactory, TopicFactory
from preflight_testkit.rpc import field_violations

OUTPUT = EventRegistry(
    [
        ch_events.ReviewReportReady,
        ch_events.FindingPublished,
        ch_events.FindingUpdated,
        ch_events.AuditCheckpoint,
    ]
)
WAIT = 25.0
VALUES = {"cyber.vuln-detect": 0.9, "cyber.exploit": 0.2, "cyber.knowledge": 0.5, "cyber.discovery": 0.6}


class Running:
    """A clearinghouse process (serve) on a private event loop in a thread."""

    def __init__(self, settings: ClearinghouseSettings, signer: ReportSigner, service_token: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self.port = 0
        self.error: BaseException | None = None

        def on_ready(port: int) -> None:
            self.port = port
            self._ready.set()

        async def main() -> None:
            try:
                await serve(settings, signer, service_token, stop=self._stop, on_ready=on_ready)
            except BaseException as exc:  # surfaced to the test
                self.error = exc
                self._ready.set()

        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(main(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(WAIT) and self.error is None, self.error

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=WAIT)


def records(kafka: KafkaSettings, topic: str) -> Iterator[tuple[dict[str, str], Message]]:
    """Every record of `topic` from the beginning, decoded; waits up to WAIT seconds for each."""
    consumer = KafkaConsumer(
        topic,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(WAIT * 1000),
        **kafka.kafka_python_options(),
    )
    try:
        for record in consumer:
            headers = list(record.headers)
            if topic.endswith(".dlq"):
                yield headers_dict(headers), ch_events.ReviewReportReady()
            else:
                yield headers_dict(headers), decode_record(headers, record.value, OUTPUT)[1]
    finally:
        consumer.close()


def first(stream: Iterator[tuple[dict[str, str], Message]], matches: Callable[[Message], bool]) -> Message:
    for _headers, payload in stream:
        if matches(payload):
            return payload
    raise AssertionError("no matching record arrived")


@pytest.fixture
def topics(unique_topic: TopicFactory, kafka_settings: KafkaSettings) -> Topics:
    """Fresh topics (one partition each), with `.dlq` twins for the three consumed ones."""
    consumed = {
        field: unique_topic(f"ch-{field}") for field in ("submissions", "benchmark_jobs", "benchmark_results")
    }
    produced = {field: unique_topic(f"ch-{field}") for field in ("reviews", "findings", "audit_checkpoints")}
    twins = [TopicSpec(Topics.dlq(name), partitions=1) for name in consumed.values()]
    ensure_topics(kafka_settings, twins)
    return Topics(**consumed, **produced)


@pytest.fixture
def clearinghouse_kafka(kafka_principal: PrincipalFactory, topics: Topics) -> KafkaSettings:
    """The clearinghouse's principal, with exactly its production grants on `topics`."""
    return kafka_principal(service_principal("clearinghouse"), service_grants("clearinghouse", topics))


def publish_all(publisher: EventPublisher, topics: Topics, events: list[tuple[str, str, Message]]) -> None:
    """Publish each (topic, event id, payload) as the topic's owner publishes it."""
    publisher.publish_many(
        [
            (
                topic,
                encode_event(
                    payload, source=source_of(topics, topic), subject=str(payload.submission_id), event_id=eid
                ),
            )
            for topic, eid, payload in events
        ]
    )


def source_of(topics: Topics, topic: str) -> str:
    owner = owner_of(topics, topic)
    assert owner is not None, topic
    return SOURCES[owner]


def clearinghouse_settings(
    kafka: KafkaSettings, topics: Topics, tmp_path: Path, identity_target: str
) -> ClearinghouseSettings:
    return replace(
        ClearinghouseSettings(),
        database_url=f"sqlite:///{tmp_path / 'ch.db'}",
        state_dir=tmp_path / "state",
        listen="127.0.0.1:0",
        identity_target=identity_target,
        consumer_group=f"{service_principal('clearinghouse')}-{tmp_path.name}",
        relay_interval=0.05,
        stream_poll_interval=0.05,
        kafka=kafka,
        topics=topics,
    )


def review_events(
    topics: Topics, submission_id: str, with_candidate: bool = False
) -> list[tuple[str, str, Message]]:
    events: list[tuple[str, str, Message]] = [
        (
            topics.submissions,
            f"{submission_id}/received",
            submission_received(submission_id, "lab-xq7", consent=False),
        )
    ]
    events += [
        (
            topics.benchmark_jobs,
            f"{submission_id}/{suite}/requested",
            job_requested(submission_id, suite, capability),
        )
        for suite, capability, _ in SUITES
    ]
    for suite, capability, metric in SUITES:
        candidates = (candidate(),) if with_candidate and suite == "cyber.discovery" else ()
        result = completed(submission_id, suite, capability, metric, VALUES[suite], candidates=candidates)
        events.append((topics.benchmark_results, f"{submission_id}/{suite}/ended", result))
    events.append((topics.benchmark_results, f"{submission_id}/plan-ended", plan_ended(submission_id)))
    return events


def test_reports_findings_and_replays_over_the_real_broker(
    kafka_settings: KafkaSettings, clearinghouse_kafka: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    kafka = kafka_settings
    loopback = LoopbackServer()
    identity = start_identity(loopback, tmp_path)
    settings = clearinghouse_settings(clearinghouse_kafka, topics, tmp_path, identity.target)
    signer = ReportSigner(Ed25519PrivateKey.generate())
    running = Running(settings, signer, identity.service_token)
    publisher = EventPublisher(kafka, source=SOURCES["benchmark"])
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = clearinghouse_pb2_grpc.ClearinghouseServiceStub(channel)
    reviewer = (("authorization", f"Bearer {identity.token(Principal('rev-1', Role.REVIEWER, 'agency'))}"),)
    lab = (("authorization", f"Bearer {identity.token(Principal('lab-x', Role.LAB, 'lab-xq7'))}"),)
    try:
        events = review_events(topics, "sub-1", with_candidate=True)
        publish_all(publisher, topics, events)
        reviews = records(kafka, topics.reviews)
        ready = first(reviews, lambda p: isinstance(p, ch_events.ReviewReportReady))
        assert isinstance(ready, ch_events.ReviewReportReady)
        # vuln-detect 0.9 → TIER_4 (≥ 0.85); the others lower: the report is TIER_4
        assert (ready.submission_id, ready.version, ready.tier) == ("sub-1", 1, "TIER_4")
        key = stub.GetSigningKey(pb.GetSigningKeyRequest(key_id=ready.signing_key_id), metadata=lab)
        assert verify_signature(key.public_key, ready.body, ready.signature)

        # Replay everything (same ce_ids), then a second submission as a barrier: on these
        # single-partition topics, its report comes after anything the replay could cause.
        publish_all(publisher, topics, events)
        publish_all(publisher, topics, review_events(topics, "sub-2"))
        following = first(reviews, lambda p: isinstance(p, ch_events.ReviewReportReady))
        assert isinstance(following, ch_events.ReviewReportReady)
        assert following.submission_id == "sub-2"

        listed = stub.ListFindings(pb.ListFindingsRequest(), metadata=reviewer).findings
        (found,) = listed
        assert found.source.developer == "lab-xq7"
        stub.SetFindingSharing(
            pb.SetFindingSharingRequest(
                finding_id=found.finding_id,
                tlp=common_pb2.TLP_AMBER,
                audience=common_pb2.Audience(organisations=["op-a"], sectors=["healthcare"]),
            ),
            metadata=reviewer,
        )
        for state in (ch_events.FINDING_STATE_TRIAGED, ch_events.FINDING_STATE_VALIDATED):
            stub.TransitionFinding(
                pb.TransitionFindingRequest(finding_id=found.finding_id, state=state), metadata=reviewer
            )
        published = first(
            records(kafka, topics.findings), lambda p: isinstance(p, ch_events.FindingPublished)
        )
        assert isinstance(published, ch_events.FindingPublished)
        notice = published.finding
        assert notice.finding_id == found.finding_id and notice.tlp == common_pb2.TLP_AMBER
        assert list(notice.audience.organisations) == ["op-a"] and list(notice.audience.sectors) == [
            "healthcare"
        ]
        assert not notice.HasField("source")

        poison = completed("sub-3", "cyber.exploit", "exploit_generation", "accuracy", 0.1)
        poison.job_id = ""
        publish_all(publisher, topics, [(topics.benchmark_results, "poison", poison)])
        headers, _ = next(records(kafka, f"{topics.benchmark_results}.dlq"))
        assert headers["preflight_dlq_reason"].endswith("lacks required field(s): job_id")
    finally:
        channel.close()
        publisher.close()
        running.stop()
        loopback.close()
    assert running.error is None


class Forgery:
    """A clearinghouse process (as its own principal, `service_kafka`), its gRPC stub and a
    publisher with the administrator's credentials (`kafka`)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        service_kafka: KafkaSettings,
        topics: Topics,
        tmp_path: Path,
        **overrides: Any,
    ) -> None:
        self.kafka, self.topics = kafka, topics
        self.loopback = LoopbackServer()
        self.identity = start_identity(self.loopback, tmp_path)
        settings = clearinghouse_settings(service_kafka, topics, tmp_path, self.identity.target)
        settings = replace(settings, **overrides)
        self.running = Running(
            settings, ReportSigner(Ed25519PrivateKey.generate()), self.identity.service_token
        )
        self.publisher = EventPublisher(kafka, source=SOURCES["benchmark"])
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.running.port}")
        self.stub = clearinghouse_pb2_grpc.ClearinghouseServiceStub(self.channel)

    def as_(self, principal: Principal) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.identity.token(principal)}"),)

    def forge(self, topic: str, payload: Message, source: str, event_id: str) -> None:
        """Write an event as anyone may who holds the broker's administrator credentials."""
        record = encode_event(
            payload, source=source, subject=str(getattr(payload, "submission_id", "")), event_id=event_id
        )
        self.publisher.publish_record(topic, record)

    def dead_letters(self, topic: str, expected: int) -> dict[str, str]:
        """The DLQ reason of each dead-lettered event of `topic`, by event id, once `expected` arrived."""
        reasons: dict[str, str] = {}
        for headers, _ in records(self.kafka, Topics.dlq(topic)):
            reasons[headers["ce_id"]] = headers["preflight_dlq_reason"]
            if len(reasons) == expected:
                return reasons
        raise AssertionError(f"only {reasons} reached the DLQ of {topic}")

    def close(self) -> None:
        self.channel.close()
        self.publisher.close()
        self.running.stop()
        self.loopback.close()
        assert self.running.error is None


LAB = Principal("lab-x", Role.LAB, "lab-xq7")
RIVAL = Principal("lab-r", Role.LAB, "lab-rival")
REVIEWER = Principal("rev-1", Role.REVIEWER, "agency")


def test_a_re_announced_submission_naming_another_lab_moves_nothing_and_is_dead_lettered(
    kafka_settings: KafkaSettings, clearinghouse_kafka: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    forgery = Forgery(kafka_settings, clearinghouse_kafka, topics, tmp_path)
    try:
        events = review_events(topics, "sub-r")
        publish_all(forgery.publisher, topics, events[:1])
        # Intake's source, the same submission, a rival lab: the first organisation stands.
        forgery.forge(
            topics.submissions, submission_received("sub-r", "lab-rival"), SOURCES["intake"], "forged"
        )
        publish_all(forgery.publisher, topics, events[1:])

        ready = first(
            records(kafka_settings, topics.reviews), lambda p: isinstance(p, ch_events.ReviewReportReady)
        )
        assert isinstance(ready, ch_events.ReviewReportReady) and ready.submission_id == "sub-r"
        assert forgery.dead_letters(topics.submissions, 1) == {
            "forged": "poison event: submission sub-r: organisation set once, may not change"
        }
        request = pb.GetReportRequest(submission_id="sub-r")
        assert forgery.stub.GetReport(request, metadata=forgery.as_(LAB)).report.organisation == "lab-xq7"
        with pytest.raises(grpc.RpcError) as caught:
            forgery.stub.GetReport(request, metadata=forgery.as_(RIVAL))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        forgery.close()


def test_the_report_is_issued_once_when_the_benchmark_announces_the_end_of_the_plan(
    kafka_settings: KafkaSettings, clearinghouse_kafka: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    forgery = Forgery(kafka_settings, clearinghouse_kafka, topics, tmp_path)
    try:
        *results, announced = review_events(topics, "sub-p")
        publish_all(forgery.publisher, topics, results)
        # Only the benchmark announces a plan's end; intake's announcement is dead-lettered, after
        # every result before it on the submission's partition was applied.
        forgery.forge(topics.benchmark_results, plan_ended("sub-p"), SOURCES["intake"], "forged/plan-ended")
        assert forgery.dead_letters(topics.benchmark_results, 1) == {
            "forged/plan-ended": f"source preflight.intake may not publish on {topics.benchmark_results}"
        }
        request = pb.GetReportRequest(submission_id="sub-p")
        with pytest.raises(grpc.RpcError) as caught:
            forgery.stub.GetReport(request, metadata=forgery.as_(REVIEWER))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, (
            "every job ended, but the plan's end was not said"
        )

        # The announcement, delivered twice, then another submission's review as a barrier.
        publish_all(forgery.publisher, topics, [announced, announced, *review_events(topics, "sub-q")])
        issued = []
        for _headers, payload in records(kafka_settings, topics.reviews):
            if isinstance(payload, ch_events.ReviewReportReady):
                issued.append(payload.submission_id)
                if payload.submission_id == "sub-q":
                    break
        assert issued == ["sub-p", "sub-q"]
    finally:
        forgery.close()


def test_forged_benchmark_results_issue_no_report_and_are_dead_lettered(
    kafka_settings: KafkaSettings, clearinghouse_kafka: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    forgery = Forgery(kafka_settings, clearinghouse_kafka, topics, tmp_path, plan_wait=1.0)
    try:
        # The benchmark planned four jobs whose access window opens tomorrow: none can have run.
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        planned = []
        for suite, capability, _ in SUITES:
            request = job_requested("sub-f", suite, capability)
            request.not_before.FromDatetime(tomorrow)
            planned.append((topics.benchmark_jobs, f"sub-f/{suite}/requested", request))
        publish_all(forgery.publisher, topics, [review_events(topics, "sub-f")[0], *planned])

        # The benchmark's source, its real job ids, the first attempt, top scores.
        forged = {}
        for suite, capability, metric in SUITES:
            forged[f"forged/{suite}"] = completed("sub-f", suite, capability, metric, 0.99)
            forgery.forge(
                topics.benchmark_results, forged[f"forged/{suite}"], SOURCES["benchmark"], f"forged/{suite}"
            )
        unplanned = completed("sub-f", "cyber.other", "other", "accuracy", 0.99)
        forgery.forge(topics.benchmark_results, unplanned, SOURCES["benchmark"], "forged/unplanned")
        extra_attempt = completed("sub-f", *SUITES[0], 0.99)
        extra_attempt.attempt = 4  # the plan allows three
        forgery.forge(topics.benchmark_results, extra_attempt, SOURCES["benchmark"], "forged/attempt")
        as_intake = completed("sub-f", *SUITES[1], 0.99)
        forgery.forge(topics.benchmark_results, as_intake, SOURCES["intake"], "forged/source")

        reasons = forgery.dead_letters(topics.benchmark_results, len(forged) + 3)

        opens = tomorrow.isoformat()
        for suite, *_ in SUITES:
            assert reasons[f"forged/{suite}"] == (
                f"job sub-f/{suite}/1.0.0 completed before its window opens at {opens} (waited 1 s for it)"
            )
        assert reasons["forged/unplanned"] == (
            "job sub-f/cyber.other/1.0.0 was never planned (no BenchmarkJobRequested) (waited 1 s for it)"
        )
        assert reasons["forged/attempt"] == (
            f"poison event: job sub-f/{SUITES[0][0]}/1.0.0: attempt 4 is not one of its attempts"
        )
        assert (
            reasons["forged/source"]
            == f"source preflight.intake may not publish on {topics.benchmark_results}"
        )
        with pytest.raises(grpc.RpcError) as caught:
            forgery.stub.GetReport(pb.GetReportRequest(submission_id="sub-f"), metadata=forgery.as_(REVIEWER))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        forgery.close()


def test_verify_audit_reads_the_last_signed_checkpoint_from_the_topic_and_catches_tampering(
    kafka_settings: KafkaSettings, clearinghouse_kafka: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    loopback = LoopbackServer()
    identity = start_identity(loopback, tmp_path)
    settings = replace(
        clearinghouse_settings(clearinghouse_kafka, topics, tmp_path, identity.target),
        checkpoint_interval=0.2,
    )
    key = generate_key()
    key_file = tmp_path / "signing.key"
    key_file.write_text(key)
    running = Running(settings, ReportSigner.from_key_text(key), identity.service_token)
    publisher = EventPublisher(kafka_settings, source=SOURCES["benchmark"])
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = clearinghouse_pb2_grpc.ClearinghouseServiceStub(channel)
    reviewer = (("authorization", f"Bearer {identity.token(REVIEWER)}"),)
    try:
        publish_all(publisher, topics, review_events(topics, "sub-a"))
        ready = first(
            records(kafka_settings, topics.reviews), lambda p: isinstance(p, ch_events.ReviewReportReady)
        )
        assert isinstance(ready, ch_events.ReviewReportReady)
        # A signed report body carries a checkpoint too, and is kilobytes long.
        by_report = stub.VerifyAuditLog(
            pb.VerifyAuditLogRequest(checkpoint_body=ready.body, checkpoint_signature=ready.signature),
            metadata=reviewer,
        )
        assert by_report.ok and by_report.checkpoint_sequence > 0, by_report
        entries = stub.VerifyAuditLog(pb.VerifyAuditLogRequest(), metadata=reviewer).entries
        # Published by the process itself, over the relay: the checkpoint of the head as it stands.
        checkpoint = first(
            records(kafka_settings, topics.audit_checkpoints),
            lambda p: isinstance(p, ch_events.AuditCheckpoint) and p.sequence == entries,
        )
        assert isinstance(checkpoint, ch_events.AuditCheckpoint)
        request = pb.VerifyAuditLogRequest(
            checkpoint_body=checkpoint.body, checkpoint_signature=checkpoint.signature
        )
        verdict = stub.VerifyAuditLog(request, metadata=reviewer)
        assert (verdict.ok, verdict.checkpoint_sequence) == (True, entries)
        with pytest.raises(grpc.RpcError) as caught:
            stub.VerifyAuditLog(
                pb.VerifyAuditLogRequest(checkpoint_body=b"{}", checkpoint_signature=checkpoint.signature),
                metadata=reviewer,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(field_violations(caught.value)) == {"checkpoint_signature"}
    finally:
        channel.close()
        publisher.close()
        running.stop()
        loopback.close()
    assert running.error is None

    env = {
        **clearinghouse_kafka.env(),
        "PREFLIGHT_DATABASE_URL": settings.database_url,
        "PREFLIGHT_TOPIC_AUDIT_CHECKPOINTS": topics.audit_checkpoints,
        "PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE": str(key_file),
    }
    intact = cli("verify-audit", env=env)
    assert intact.returncode == 0 and f"at entry {entries}" in intact.stdout, intact.stderr
    engine = make_engine(settings.database_url)
    try:
        truncate_audit_log(engine, keep=entries - 1)
        assert cli("verify-audit", "--no-checkpoint", env=env).returncode == 0  # blind without one
        truncated = cli("verify-audit", env=env)
        assert truncated.returncode == 1 and "truncated" in truncated.stderr
    finally:
        engine.dispose()
