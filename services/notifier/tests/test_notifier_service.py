"""The notifier as it runs: `preflight-notifier serve` as a real process on a real broker, killed and
restarted; and its migrations, which create exactly the tables the code uses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaConsumer
from preflight.clearinghouse.v1.events_pb2 import FindingPublished
from preflight.common.v1 import common_pb2
from preflight.notifier.v1 import events_pb2 as notifier_events
from preflight.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from preflight_common.bus import SOURCES, service_grants, service_principal
from preflight_common.config import ConfigError, KafkaSettings, Topics
from preflight_common.db import make_engine
from preflight_common.envelope import KafkaRecord, headers_dict
from preflight_common.ports import free_port
from preflight_common.producer import EventPublisher
from preflight_common.topics import TopicSpec, ensure_topics
from preflight_notifier.adapters.tables import deadlines, metadata
from preflight_notifier.config import NotifierSettings
from preflight_notifier.entrypoints import cli, server
from preflight_testkit.clients import dead_letter_reasons
from preflight_testkit.fixtures import PrincipalFactory
from preflight_testkit.notifier import finding_notice, submission_received
from preflight_testkit.tls import TestAuthority
from preflight_testkit.waiting import wait_until
from sqlalchemy import Engine, select

ROUTING = {
    "deadlines": {
        "late_after": "3s",
        "review": {
            "thresholds": [{"before": "20s"}, {"before": "12s"}, {"before": "0", "severity": "critical"}]
        },
    },
    "route": {"receiver": "nobody"},
    "receivers": [{"name": "nobody", "audience": {"role": "reviewer"}}],
}


def test_migrations_create_exactly_the_tables_the_code_uses(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFLIGHT_DATABASE_URL", db_url)
    assert cli.main(["migrate"]) == 0
    assert cli.main(["migrate"]) == 0  # migrating twice is harmless
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_a_bad_routing_file_is_reported_with_the_entry_at_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "routing.yaml"
    receiver = {
        "name": "ops",
        "audience": {"role": "operator", "organisation": "x"},
        "webhook": {"url": "ftp://x"},
    }
    bad.write_text(yaml.safe_dump({"route": {"receiver": "ops"}, "receivers": [receiver]}))
    monkeypatch.setenv("PREFLIGHT_NOTIFIER_ROUTING_FILE", str(bad))
    assert cli.main(["check"]) == 2
    assert "receivers[0]: webhook.url must be an http(s) URL" in capsys.readouterr().err
    monkeypatch.delenv("PREFLIGHT_NOTIFIER_ROUTING_FILE")
    assert cli.main(["check"]) == 0
    assert "review: T-7d, T-3d, T-1d, T-0" in capsys.readouterr().out


def test_webhook_and_smtp_secrets_in_the_environment_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    routing = tmp_path / "routing.yaml"
    hook = {"url": "https://hooks.example/p", "secret_env": "PREFLIGHT_NOTIFIER_WEBHOOK_SECRET_OPS"}
    receiver = {"name": "ops", "audience": {"role": "operator", "organisation": "x"}, "webhook": hook}
    routing.write_text(yaml.safe_dump({"route": {"receiver": "ops"}, "receivers": [receiver]}))
    monkeypatch.setenv("PREFLIGHT_NOTIFIER_ROUTING_FILE", str(routing))
    assert cli.main(["check"]) == 2
    assert "receivers[0]: webhook.secret_env is not accepted" in capsys.readouterr().err
    monkeypatch.delenv("PREFLIGHT_NOTIFIER_ROUTING_FILE")
    monkeypatch.setenv("PREFLIGHT_NOTIFIER_SMTP_PASSWORD", "smtp-pass-in-env")
    with pytest.raises(ConfigError, match="PREFLIGHT_NOTIFIER_SMTP_PASSWORD_FILE") as refused:
        NotifierSettings.from_env()
    assert "smtp-pass-in-env" not in str(refused.value)
    monkeypatch.delenv("PREFLIGHT_NOTIFIER_SMTP_PASSWORD")
    password = tmp_path / "smtp.password"
    monkeypatch.setenv("PREFLIGHT_NOTIFIER_SMTP_PASSWORD_FILE", str(password))
    assert NotifierSettings.from_env().smtp.credential_file == str(password)


def test_the_service_token_in_the_environment_is_refused_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "pft_notifier-token-never-in-the-environment"
    monkeypatch.setenv("PREFLIGHT_SERVICE_TOKEN", token)
    settings = NotifierSettings(database_url=f"sqlite:///{tmp_path / 'notifier.db'}")
    with pytest.raises(ConfigError, match="PREFLIGHT_SERVICE_TOKEN_FILE") as refused:
        asyncio.run(server.serve(settings, stop=asyncio.Event()))
    assert token not in str(refused.value)
    assert not (tmp_path / "notifier.db").exists()  # refused before anything started


READY = "outbox relay and deadline agents running"


class NotifierProcess:
    """`preflight-notifier serve` in its own process, logging to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._env = env
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "preflight_notifier.entrypoints.cli", "serve"],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def log(self) -> str:
        return self._log.read_text(errors="replace")

    def wait_running(self, starts: int, deadline_s: float = 60) -> None:
        """Until the `starts`-th start has caught up and connected to Kafka (its agents are running)."""
        until = time.monotonic() + deadline_s
        while self.log().count(READY) < starts:
            if time.monotonic() > until:
                pytest.fail(f"the notifier did not start:\n{self.log()}")
            time.sleep(0.1)


@pytest.fixture
def topics(unique_topic: Any, kafka_settings: KafkaSettings) -> Topics:
    names = Topics(
        submissions=unique_topic("submissions", partitions=3),
        reviews=unique_topic("reviews"),
        findings=unique_topic("findings"),
        alerts_prefix=f"alerts.{uuid.uuid4().hex[:12]}",
        review_alerts=unique_topic("review-alerts", partitions=3),
    )
    ensure_topics(
        kafka_settings,
        [TopicSpec(Topics.dlq(t), partitions=1) for t in (names.submissions, names.reviews, names.findings)],
    )
    return names


@pytest.fixture
def notifier_kafka(kafka_principal: PrincipalFactory, topics: Topics) -> KafkaSettings:
    """The notifier's principal, with exactly its production grants on `topics`."""
    return kafka_principal(service_principal("notifier"), service_grants("notifier", topics))


def _serve_env(tmp_path: Path, kafka: KafkaSettings, topics: Topics) -> dict[str, str]:
    routing = tmp_path / "routing.yaml"
    routing.write_text(yaml.safe_dump(ROUTING))
    token = tmp_path / "service.token"
    token.write_text("pft_unused_in_this_test\n")
    return {
        **os.environ,
        "PREFLIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'notifier.db'}",
        "PREFLIGHT_GRPC_LISTEN": f"127.0.0.1:{free_port()}",
        "PREFLIGHT_IDENTITY_TARGET": f"127.0.0.1:{free_port()}",
        "PREFLIGHT_SERVICE_TOKEN_FILE": str(token),
        **kafka.env(),
        "PREFLIGHT_KAFKA_SESSION_TIMEOUT": "6",
        "PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL": "1",
        "PREFLIGHT_TOPIC_SUBMISSIONS": topics.submissions,
        "PREFLIGHT_TOPIC_REVIEWS": topics.reviews,
        "PREFLIGHT_TOPIC_FINDINGS": topics.findings,
        "PREFLIGHT_TOPIC_ALERTS_PREFIX": topics.alerts_prefix,
        "PREFLIGHT_TOPIC_REVIEW_ALERTS": topics.review_alerts,
        "PREFLIGHT_NOTIFIER_ROUTING_FILE": str(routing),
        "PREFLIGHT_NOTIFIER_CONSUMER_GROUP": f"{service_principal('notifier')}-{uuid.uuid4().hex[:8]}",
        "PREFLIGHT_NOTIFIER_SCHEDULER_INTERVAL": "0.2",
        "PREFLIGHT_NOTIFIER_RELAY_INTERVAL": "0.1",
    }


@pytest.fixture
def served(tmp_path: Path, notifier_kafka: KafkaSettings, topics: Topics) -> Iterator[NotifierProcess]:
    process = NotifierProcess(_serve_env(tmp_path, notifier_kafka, topics), tmp_path / "notifier.log")
    process.start()
    yield process
    if process.process is not None and process.process.poll() is None:
        process.kill()


class AlertWatcher:
    """Reads the alerts topic from the beginning, as `kafka`'s principal."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self._consumer = KafkaConsumer(
            topic,
            group_id=f"watch-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **kafka.kafka_python_options(),
        )
        self.records: list[Any] = []

    def alerts(self) -> list[notifier_events.Alert]:
        return [notifier_events.Alert.FromString(r.value) for r in self.records]

    def wait_for(self, subject: str, threshold: str, deadline_s: float, process: NotifierProcess) -> None:
        until = time.monotonic() + deadline_s
        while time.monotonic() < until:
            for batch in self._consumer.poll(timeout_ms=200).values():
                self.records += batch
            if any(a.subject_id == subject and a.threshold == threshold for a in self.alerts()):
                return
        pytest.fail(
            f"no {threshold} alert for {subject} within {deadline_s}s; notifier log:\n{process.log()}"
        )

    def close(self) -> None:
        self._consumer.close()


def _sleep_until(moment: datetime) -> None:
    remaining = (moment - datetime.now(UTC)).total_seconds()
    if remaining > 0:
        time.sleep(remaining)


def test_killed_and_restarted_notifier_fires_each_threshold_once_and_dead_letters_garbage(
    served: NotifierProcess, kafka_settings: KafkaSettings, topics: Topics
) -> None:
    publisher = EventPublisher(kafka_settings, source=SOURCES["intake"])
    watcher = AlertWatcher(kafka_settings, topics.review_alerts)
    try:
        # Warm-up: a review already due shows the agents consume and the relay publishes.
        publisher.publish(
            topics.submissions, submission_received("warm-up", datetime.now(UTC)), subject="warm-up"
        )
        watcher.wait_for("warm-up", "T-0", 90, served)
        garbage = KafkaRecord(
            key=b"x", value=b"\x00garbage", headers=[("ce_type", b"preflight.intake.v1.Nope")]
        )
        publisher.publish_record(topics.submissions, garbage)
        nameless = submission_received("", datetime.now(UTC))  # decodes, but can never apply
        publisher.publish(topics.submissions, nameless, subject="nameless")

        t0 = datetime.now(UTC)
        release = t0 + timedelta(seconds=24)
        publisher.publish(topics.submissions, submission_received("sub-1", release), subject="sub-1")
        watcher.wait_for("sub-1", "T-20s", 30, served)
        served.kill()  # SIGKILL: no graceful anything
        _sleep_until(release - timedelta(seconds=7))  # T-12s passes while the notifier is down
        served.start()
        watcher.wait_for("sub-1", "T-12s", 60, served)
        watcher.wait_for("sub-1", "T-0", 60, served)
        served.kill()
        served.start()  # a restart after everything fired changes nothing
        served.wait_running(starts=3)
        assert served.stop() == 0
        watcher.wait_for("sub-1", "T-0", 2, served)
    finally:
        publisher.close()
        watcher.close()

    alerts = [a for a in watcher.alerts() if a.subject_id == "sub-1"]
    unique = {a.alert_id: a for a in alerts}
    assert sorted((a.threshold, a.late) for a in unique.values()) == [
        ("T-0", False),
        ("T-12s", True),
        ("T-20s", False),
    ]
    ids = [headers_dict(r.headers)["ce_id"] for r in watcher.records if r.key == b"sub-1"]
    assert sorted(set(ids)) == sorted(unique)  # at-least-once on the topic, one id per threshold

    dead = KafkaConsumer(
        Topics.dlq(topics.submissions),
        group_id=f"dlq-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        **kafka_settings.kafka_python_options(),
    )
    try:
        records = [r for _ in range(20) for batch in dead.poll(timeout_ms=250).values() for r in batch]
    finally:
        dead.close()
    assert sorted(headers_dict(r.headers)["preflight_dlq_reason"] for r in records) == [
        "preflight.intake.v1.SubmissionReceived lacks required field(s): submission_id",
        "unknown ce_type 'preflight.intake.v1.Nope'",
    ]


LIST_ALERTS = notifier_pb2.ListAlertsRequest()


def test_the_api_serves_tls_and_probes_get_a_plaintext_health_only_listener(
    tmp_path: Path, notifier_kafka: KafkaSettings, topics: Topics
) -> None:
    authority = TestAuthority()
    issued = authority.issue("localhost")
    for name, content in (
        ("tls.crt", issued.certificate),
        ("tls.key", issued.key),
        ("ca.crt", authority.pem),
    ):
        (tmp_path / name).write_bytes(content)
    api, health = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = _serve_env(tmp_path, notifier_kafka, topics) | {
        "PREFLIGHT_GRPC_LISTEN": api,
        "PREFLIGHT_NOTIFIER_TLS_CERT": str(tmp_path / "tls.crt"),
        "PREFLIGHT_NOTIFIER_TLS_KEY": str(tmp_path / "tls.key"),
        "PREFLIGHT_NOTIFIER_TLS_HEALTH_LISTEN": health,
        "PREFLIGHT_GRPC_TLS_CA": str(tmp_path / "ca.crt"),
    }
    process = NotifierProcess(env, tmp_path / "notifier.log")
    process.start()
    try:
        process.wait_running(1)
        with grpc.insecure_channel(health) as probe:  # as a Kubernetes gRPC probe
            answer = health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as refused:
                notifier_pb2_grpc.NotifierServiceStub(probe).ListAlerts(
                    notifier_pb2.ListAlertsRequest(), timeout=10
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        tls = grpc.ssl_channel_credentials(authority.pem)
        with grpc.secure_channel(api.replace("127.0.0.1", "localhost"), tls) as channel:
            with pytest.raises(grpc.RpcError) as anonymous:
                notifier_pb2_grpc.NotifierServiceStub(channel).ListAlerts(
                    notifier_pb2.ListAlertsRequest(), timeout=10
                )
            assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        with grpc.insecure_channel(api) as plaintext, pytest.raises(grpc.RpcError) as no_tls:
            health_pb2_grpc.HealthStub(plaintext).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert no_tls.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        assert process.stop() == 0
    finally:
        if process.process is not None and process.process.poll() is None:
            process.kill()


def _deadline_audience(engine: Engine, deadline_id: str) -> Any:
    """The audience recorded with the deadline; None while there is none."""
    with engine.connect() as conn:
        query = select(deadlines.c.audience).where(deadlines.c.deadline_id == deadline_id)
        return conn.execute(query).scalar()


def _recorded(served: NotifierProcess, audience: Callable[[], Any], what: str) -> Any:
    """`audience()` once the notifier has applied `what` (within a minute)."""
    try:
        return wait_until(audience, 60, what)
    except TimeoutError:
        raise AssertionError(f"{what} was not applied:\n{served.log()}") from None


def test_a_forged_finding_publication_widens_no_audience_and_is_dead_lettered(
    served: NotifierProcess, kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    served.wait_running(starts=1)
    clearinghouse = EventPublisher(kafka_settings, source=SOURCES["clearinghouse"])
    as_intake = EventPublisher(kafka_settings, source=SOURCES["intake"])
    engine = make_engine(f"sqlite:///{tmp_path / 'notifier.db'}")

    def audience() -> Any:
        return _deadline_audience(engine, "embargo_end/f-red")

    try:
        red = finding_notice(
            "f-red", embargo_end=datetime.now(UTC) + timedelta(days=3), tlp=common_pb2.TLP_RED
        )
        clearinghouse.publish(topics.findings, FindingPublished(finding=red), subject="f-red")
        recorded = _recorded(served, audience, "the finding")

        # The clearinghouse's source (or intake's), the same RED finding, two operators more.
        widened = FindingPublished(finding=red)
        widened.finding.revision = 2
        widened.finding.audience.organisations[:] = ["bank-a", "bank-b", "water-co"]
        forged = clearinghouse.publish(topics.findings, widened, subject="f-red").id
        foreign = as_intake.publish(topics.findings, widened, subject="f-red").id

        reasons = dead_letter_reasons(kafka_settings, topics.findings, {forged, foreign})
    finally:
        clearinghouse.close()
        as_intake.close()

    assert reasons == {
        forged: "poison event: finding f-red is already published: it is published once",
        foreign: f"source preflight.intake may not publish on {topics.findings}",
    }
    assert audience() == recorded and "bank-b" not in recorded
    engine.dispose()


def test_a_re_announced_submission_naming_another_lab_moves_no_alert_and_is_dead_lettered(
    served: NotifierProcess, kafka_settings: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    served.wait_running(starts=1)
    intake = EventPublisher(kafka_settings, source=SOURCES["intake"])
    engine = make_engine(f"sqlite:///{tmp_path / 'notifier.db'}")

    def audience() -> Any:
        return _deadline_audience(engine, "review/sub-moved")

    try:
        release = datetime.now(UTC) + timedelta(days=8)
        intake.publish(topics.submissions, submission_received("sub-moved", release), subject="sub-moved")
        recorded = _recorded(served, audience, "the submission")

        # Intake's source, the same submission, a rival lab (and its contacts): the first lab stands.
        rival = submission_received("sub-moved", release, version=2, organisation="lab-rival")
        rival.contacts[0].email = "ada@lab-rival.example"
        forged = intake.publish(topics.submissions, rival, subject="sub-moved").id
        reasons = dead_letter_reasons(kafka_settings, topics.submissions, {forged})
    finally:
        intake.close()

    assert reasons == {
        forged: "poison event: submission sub-moved belongs to another organisation than lab-rival: "
        "its organisation is set once"
    }
    assert audience() == recorded and "lab-rival" not in recorded
    engine.dispose()
