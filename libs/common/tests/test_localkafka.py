"""The local KRaft broker: readiness, round trips, authentication and ACLs, crash and restart,
and the up/down commands."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError
from preflight_common.bus import Grant, Operation, Pattern, ResourceType
from preflight_common.config import KafkaSettings
from preflight_common.localkafka import LocalKafka, ensure_jars, find_repo_root, pinned_kafka_version
from preflight_testkit.clients import assert_read_refused, read_records, write_records
from preflight_testkit.fixtures import PrincipalFactory, TopicFactory

# These tests start brokers (their own or the session's).
pytestmark = pytest.mark.slow

REPO_ROOT = find_repo_root(Path(__file__).parent)


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_broker_is_ready_and_listens_on_loopback(
    kafka: LocalKafka, kafka_bootstrap: str, kafka_settings: KafkaSettings
) -> None:
    assert kafka.is_running()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", kafka_bootstrap)
    admin = KafkaAdminClient(**kafka_settings.kafka_python_options())
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [("127.0.0.1", kafka.port)]
    config = kafka.config_path.read_text()
    assert "auto.create.topics.enable=false" in config
    assert "0.0.0.0" not in config


def test_produce_consume_round_trip(kafka_settings: KafkaSettings, unique_topic: TopicFactory) -> None:
    topic = unique_topic("roundtrip")
    values = [b"one", b"two", b"three"]
    write_records(kafka_settings, topic, values)
    records = read_records(kafka_settings, topic, expected=3)
    assert [r.value for r in records] == values
    assert {r.key for r in records} == {b"key"}


def test_unique_topic_creates_partitions(kafka_settings: KafkaSettings, unique_topic: TopicFactory) -> None:
    first = unique_topic("bench marks/x", partitions=3, config={"retention.ms": "60000"})
    second = unique_topic("bench marks/x")
    assert first != second
    assert first.startswith("bench-marks-x.")
    admin = KafkaAdminClient(**kafka_settings.kafka_python_options())
    try:
        described = {t["name"]: t for t in admin.describe_topics([first, second])}
    finally:
        admin.close()
    assert len(described[first]["partitions"]) == 3
    assert len(described[second]["partitions"]) == 1


def test_topics_are_not_auto_created(kafka_settings: KafkaSettings) -> None:
    producer = KafkaProducer(max_block_ms=2_000, **kafka_settings.kafka_python_options())
    try:
        with pytest.raises(KafkaTimeoutError):
            producer.send("preflight.no-such-topic.v1", b"lost?").get(timeout=5)
    finally:
        producer.close(timeout=5)


def cannot_connect(options: dict[str, Any]) -> None:
    """Fail unless a client with these options is kept from the cluster (bootstrap times out)."""
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        admin = KafkaAdminClient(bootstrap_timeout_ms=3_000, **options)
        admin.close()


def test_the_broker_refuses_an_unauthenticated_client(kafka_bootstrap: str) -> None:
    cannot_connect({"bootstrap_servers": kafka_bootstrap})


def test_the_broker_refuses_a_wrong_password(kafka_principal: PrincipalFactory, tmp_path: Path) -> None:
    principal = kafka_principal("test-wrong-password", [])
    admin = KafkaAdminClient(bootstrap_timeout_ms=30_000, **principal.kafka_python_options())
    admin.close()  # with its own password, the principal gets in
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password", encoding="utf-8")
    cannot_connect(replace(principal, sasl_password_file=str(wrong)).kafka_python_options())


def topic_grants(user: str, topic: str, *operations: Operation) -> list[Grant]:
    return [Grant(f"User:{user}", ResourceType.TOPIC, topic, Pattern.LITERAL, op) for op in operations]


def test_a_principal_reads_and_writes_only_what_an_acl_allows(
    kafka_settings: KafkaSettings, kafka_principal: PrincipalFactory, unique_topic: TopicFactory
) -> None:
    topic = unique_topic("acl")
    write_records(kafka_settings, topic, [b"written-by-admin"])
    stranger = kafka_principal("test-stranger", [])
    with pytest.raises(TopicAuthorizationFailedError):
        write_records(stranger, topic, [b"forged"])
    assert_read_refused(stranger, topic)

    granted = kafka_principal(
        "test-granted",
        topic_grants("test-granted", topic, Operation.WRITE, Operation.READ, Operation.DESCRIBE),
    )
    write_records(granted, topic, [b"written-by-granted"])
    records = read_records(granted, topic, expected=2)
    assert [r.value for r in records] == [b"written-by-admin", b"written-by-granted"]


def test_a_write_grant_does_not_allow_reading(
    kafka_principal: PrincipalFactory, unique_topic: TopicFactory
) -> None:
    topic = unique_topic("acl-write-only")
    writer = kafka_principal(
        "test-writer", topic_grants("test-writer", topic, Operation.WRITE, Operation.DESCRIBE)
    )
    write_records(writer, topic, [b"one"])
    assert_read_refused(writer, topic)


def test_ensure_jars_does_not_fetch_twice(kafka: LocalKafka) -> None:
    # The session broker already needed the jars: with them in place, Maven is never run
    # (a missing executable would make the call fail).
    lib = ensure_jars(REPO_ROOT, mvn="/nonexistent/mvn")
    assert (lib / f"kafka_2.13-{pinned_kafka_version(REPO_ROOT)}.jar").is_file()


def test_kill_and_restart_on_same_port_keeps_messages(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path / "kafka", repo_root=REPO_ROOT)
    broker.start()
    try:
        settings = broker.admin_settings()
        port = broker.port
        assert port is not None
        admin = KafkaAdminClient(**settings.kafka_python_options())
        try:
            admin.create_topics(
                {"preflight.crash.v1": {"num_partitions": 1, "replication_factor": 1}},
                wait_for_metadata=True,
            )
        finally:
            admin.close()
        write_records(settings, "preflight.crash.v1", [b"before-crash-1", b"before-crash-2"])

        pid = broker.pid
        assert pid is not None
        broker.kill()
        assert not broker.is_running()
        assert not pid_alive(pid)
        assert not port_accepts(port)

        broker.restart()
        assert broker.admin_settings() == settings
        write_records(settings, "preflight.crash.v1", [b"after-restart"])
        records = read_records(settings, "preflight.crash.v1", expected=3)
        assert [r.value for r in records] == [b"before-crash-1", b"before-crash-2", b"after-restart"]

        pid = broker.pid
        assert pid is not None
    finally:
        broker.stop()
    assert not broker.is_running()
    assert not pid_alive(pid)
    assert processes_mentioning(str(tmp_path / "kafka")) == []


def test_broker_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "orphan"
    script = textwrap.dedent(
        f"""
        import sys, time
        from preflight_common.localkafka import LocalKafka
        broker = LocalKafka({str(run_dir)!r}, repo_root={str(REPO_ROOT)!r})
        broker.start()
        print(broker.pid, flush=True)
        time.sleep(600)
        """
    )
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        broker_pid = int(starter.stdout.readline())
        assert pid_alive(broker_pid)
    finally:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
    deadline = time.monotonic() + 10
    while pid_alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(broker_pid)


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preflight_common.localkafka", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO_ROOT,
    )


def test_cli_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "cli"
    up = run_cli("up", "--run-dir", str(run_dir), "--port", "0")
    try:
        assert up.returncode == 0, up.stderr
        match = re.search(r"^bootstrap: (127\.0\.0\.1:(\d+))$", up.stdout, re.MULTILINE)
        assert match, up.stdout
        bootstrap, port = match.group(1), int(match.group(2))
        pid = int((run_dir / "kafka.pid").read_text())
        assert pid_alive(pid)

        again = run_cli("up", "--run-dir", str(run_dir))
        assert again.returncode == 0, again.stderr
        assert f"bootstrap: {bootstrap}" in again.stdout
        assert "already running" in again.stdout
        assert int((run_dir / "kafka.pid").read_text()) == pid

        status = run_cli("status", "--run-dir", str(run_dir))
        assert status.returncode == 0
        # The administrator's password is in the run directory, readable by its owner only.
        assert (run_dir / "admin.password").stat().st_mode & 0o777 == 0o600
        admin_settings = LocalKafka(run_dir, port=port).admin_settings()
        assert admin_settings.bootstrap_servers == bootstrap
        admin = KafkaAdminClient(**admin_settings.kafka_python_options())
        try:
            assert admin.describe_cluster()["brokers"][0]["port"] == port
        finally:
            admin.close()
    finally:
        down = run_cli("down", "--run-dir", str(run_dir))
    assert down.returncode == 0, down.stderr
    assert f"stopped (pid {pid})" in down.stdout
    assert not pid_alive(pid)
    assert not port_accepts(port)
    assert processes_mentioning(str(run_dir)) == []
    assert not (run_dir / "kafka.pid").exists()

    assert run_cli("status", "--run-dir", str(run_dir)).returncode == 3
    second_down = run_cli("down", "--run-dir", str(run_dir))
    assert second_down.returncode == 0
    assert "not running" in second_down.stdout
