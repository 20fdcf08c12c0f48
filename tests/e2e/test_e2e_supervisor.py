"""The embedded stack's supervisor: hung services are restarted, children are supervised each on
its own, restart backoff starts over after a healthy run, and a service exits within its shutdown
budget even when the broker does not answer."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from preflight.sdk import Client
from preflight_testkit.stack import RunningStack, start_stack, submit, wait_report_ready, wait_until

pytestmark = pytest.mark.slow
SERVICES = ("intake", "benchmark", "clearinghouse", "notifier")
HEALTHY_RUN = 10
# A service's shutdown grace (10 s by default) plus the 20 s it then gets to stop its Kafka side.
SHUTDOWN_BUDGET = 30
# Longer than the shutdown budget: a service shutting down (no longer answering) is not killed
# by the supervisor before it had the time to exit on its own.
LIVENESS_BUDGET = SHUTDOWN_BUDGET + 5


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(
        tmp_path_factory.mktemp("supervised-stack"),
        {
            "PREFLIGHT_BENCHMARK_CATALOG_FILE": str(Path(__file__).parent / "data" / "catalog_fast.yaml"),
            "PREFLIGHT_STACK_PASS_ENV": "PREFLIGHT_BENCHMARK_CATALOG_FILE",
            "PREFLIGHT_STACK_LIVENESS_BUDGET": str(LIVENESS_BUDGET),
            "PREFLIGHT_STACK_HEALTHY_RUN": str(HEALTHY_RUN),
        },
    )
    yield running
    running.stack_command("down")


def _pid(stack: RunningStack, name: str) -> int | None:
    pid = stack.state["pids"].get(name)
    return int(pid) if pid else None


def _exited(pid: int) -> bool:
    """The process is gone, or a zombie its parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _age(pid: int) -> float:
    """Seconds since the process started (/proc: its start time in clock ticks after boot)."""
    started = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return float(Path("/proc/uptime").read_text().split()[0]) - started / os.sysconf("SC_CLK_TCK")


def _exits(stack: RunningStack, name: str) -> list[str]:
    """The exit statuses of `name` the supervisor logged, oldest first."""
    lines = (stack.run_dir / "logs" / "supervisor.log").read_text().splitlines()
    marker = f"[stack] {name} exited with "
    return [line.split(marker, 1)[1].split(";")[0] for line in lines if marker in line]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _restarted(stack: RunningStack, name: str, old: int, timeout: float) -> int:
    return int(
        wait_until(
            f"{name} restarted", lambda: (_pid(stack, name) or old) != old and _pid(stack, name), timeout
        )
    )


def _continue(pid: int | None) -> None:
    if pid is not None and not _exited(pid):
        os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("service", SERVICES)
def test_a_hung_service_is_killed_and_restarted_and_the_pipeline_goes_on(
    supervised: RunningStack, service: str
) -> None:
    stack = supervised
    hung = _pid(stack, service)
    assert hung is not None
    restarts = stack.state["restarts"][service]
    os.kill(hung, signal.SIGSTOP)
    try:
        _restarted(stack, service, hung, timeout=LIVENESS_BUDGET + 60)
    finally:
        _continue(hung)
    assert _exited(hung)
    assert stack.state["restarts"][service] == restarts + 1
    assert f"{service} failed its liveness check" in (stack.run_dir / "logs" / "supervisor.log").read_text()
    with Client(stack.target("intake"), token=stack.tokens["lab"]) as lab:
        wait_report_ready(stack, lab, [submit(stack, lab)], timeout=300)


def test_a_service_is_restarted_while_kafka_is_still_starting(supervised: RunningStack) -> None:
    stack = supervised
    broker = stack.state["kafka_pid"]
    os.kill(broker, signal.SIGKILL)

    def starting_broker() -> int | None:
        """The new broker's pid while it does not listen yet (the supervisor is still starting it)."""
        pid = stack.state["kafka_pid"]
        if pid in (None, broker) or _listening(stack.ports["kafka"]):
            return None
        return int(pid)

    # The new broker, held stopped before it listens: its start cannot finish meanwhile.
    starting = int(wait_until("a new broker process, not listening yet", starting_broker, 60, 0.05))
    os.kill(starting, signal.SIGSTOP)
    try:
        notifier = _pid(stack, "notifier")
        assert notifier is not None
        os.kill(notifier, signal.SIGKILL)
        _restarted(stack, "notifier", notifier, timeout=30)
        assert not _exited(starting)
    finally:
        _continue(starting)
    wait_until(
        "the broker back",
        lambda: stack.state["kafka_pid"] is not None and _listening(stack.ports["kafka"]),
        180,
    )


def test_the_restart_backoff_starts_over_after_a_healthy_run(supervised: RunningStack) -> None:
    stack = supervised
    for _ in range(4):  # quick exits: the backoff grows to 8 s
        pid = _pid(stack, "clearinghouse")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _restarted(stack, "clearinghouse", pid, timeout=30)
    pid = _pid(stack, "clearinghouse")
    assert pid is not None
    wait_until("a healthy run", lambda: _age(pid) > HEALTHY_RUN + 1, HEALTHY_RUN + 30)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    _restarted(stack, "clearinghouse", pid, timeout=30)
    assert time.monotonic() - killed < 4


def test_a_service_exits_within_its_shutdown_budget_while_the_broker_does_not_answer(
    supervised: RunningStack,
) -> None:
    stack = supervised
    with Client(stack.target("intake"), token=stack.tokens["lab"]) as lab:
        submit(stack, lab)
    broker = stack.state["kafka_pid"]
    intake = _pid(stack, "intake")
    assert intake is not None
    # Intake may have exited before in this stack (an earlier test killed it): only its next exit counts.
    earlier = len(_exits(stack, "intake"))
    os.kill(broker, signal.SIGSTOP)
    try:
        os.kill(intake, signal.SIGTERM)
        asked = time.monotonic()
        wait_until("intake to exit", lambda: _exited(intake), SHUTDOWN_BUDGET + 60, 0.2)
        took = time.monotonic() - asked
    finally:
        os.kill(broker, signal.SIGCONT)
    assert took <= SHUTDOWN_BUDGET + 2, f"intake took {took:.1f}s to exit"
    # It exited on its own (0, or 1 when it had to abandon something), not killed by the supervisor.
    exits = wait_until("the supervisor to see intake exit", lambda: _exits(stack, "intake")[earlier:], 30)
    assert exits[0] in ("0", "1"), exits
