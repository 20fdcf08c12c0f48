"""Service start-up: time from exec to the gRPC health check answering SERVING, per service.

    python bench/service_startup.py [--runs 3] [--timeout 120]

Starts a local Apache Kafka broker (SASL and ACLs, as deployed), provisions its topics,
principals and ACLs, migrates each service's SQLite store and configures the services exactly as
the embedded stack (deploy/local/stack.py) does. Then starts each service's `serve` process
`--runs` times, one at a time, and measures from exec to the first health check (service "")
answering SERVING; each process is stopped (SIGTERM) before the next starts. Prints median and
max per service next to two baselines measured in the same run: a bare interpreter importing grpc
(`python -c "import grpc"`, exec to exit), and that plus the service's own import time (the
cumulative `-X importtime` of `preflight_<service>.entrypoints.server`), so the figures show
what serving adds over importing the service. Bounded to a few minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from preflight_common.config import Topics
from preflight_common.localkafka import LocalKafka
from preflight_common.ports import free_ports
from preflight_common.topics import provision

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def load_stack() -> ModuleType:
    """deploy/local/stack.py, whose configuration of the services this bench reuses."""
    spec = importlib.util.spec_from_file_location("preflight_local_stack", ROOT / "deploy/local/stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def time_to_serving(
    serving: Callable[[int], bool], argv: list[str], env: dict[str, str], port: int, log: Path, timeout: float
) -> float:
    """Seconds from exec of `argv` to `serving(port)`; the process is then stopped."""
    with log.open("ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    try:
        deadline = started + timeout
        while not serving(port):
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode}; see {log}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{argv[0]} not serving within {timeout}s; see {log}")
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bare_start() -> float:
    """Seconds from exec to exit of an interpreter that imports grpc."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import grpc"], check=True)
    return time.perf_counter() - started


def import_time(service: str) -> float:
    """The cumulative `-X importtime` (seconds) of the service's server module."""
    module = f"preflight_{service}.entrypoints.server"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        check=True,
        capture_output=True,
        text=True,
    )
    for line in result.stderr.splitlines():
        fields = [part.strip() for part in line.split("|")]
        if len(fields) == 3 and fields[2] == module:
            return int(fields[1]) / 1e6
    raise RuntimeError(f"no import time reported for {module}")


def figures(values: list[float]) -> str:
    return f"median {statistics.median(values):6.2f} s   max {max(values):6.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="per start, seconds")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    names = ("kafka", "intake", "benchmark", "clearinghouse", "notifier")
    for name, port in zip(names, free_ports(len(names)), strict=True):
        os.environ[f"PREFLIGHT_STACK_PORT_{name.upper()}"] = str(port)  # read by the stack's `Stack`
    stack_module = load_stack()
    stack = stack_module.Stack(work)
    for folder in (stack.logs, stack.data, stack.run_dir / "evals"):
        folder.mkdir(parents=True, exist_ok=True)
    kafka = LocalKafka(stack.kafka_dir, port=stack.ports["kafka"])
    try:
        started = time.monotonic()
        kafka.start()
        print(f"kafka broker ready in {time.monotonic() - started:.1f}s")
        stack.participants_file.write_text(stack_module._participants_yaml())
        provision(
            kafka.admin_settings(),
            Topics.from_env(),
            stack_module.PARTICIPANTS,
            acls=True,
            credentials_dir=stack.kafka_credentials,
        )
        keys = stack.secrets()
        for service in stack_module.SERVICES:
            env = stack_module._service_env(stack, service, keys, {})
            stack_module._run([str(BIN / f"preflight-{service}"), "migrate"], env, stack.logs / "setup.log")
        tokens = stack_module._issue_tokens(stack, keys)
        (stack.run_dir / "routing.yaml").write_text(stack_module._routing(free_ports(1)[0]))

        bare = [bare_start() for _ in range(args.runs)]
        print(f"runs: {args.runs} per service; logs in {stack.logs}")
        print(f"{'bare interpreter + import grpc':<34} {figures(bare)}")
        for service in stack_module.SERVICES:
            env = stack_module._service_env(stack, service, keys, tokens)
            imports = [import_time(service) for _ in range(args.runs)]
            starts = [
                time_to_serving(
                    stack_module._healthy,
                    [str(BIN / f"preflight-{service}"), "serve"],
                    env,
                    stack.ports[service],
                    stack.logs / f"{service}.log",
                    args.timeout,
                )
                for _ in range(args.runs)
            ]
            baseline = [statistics.median(bare) + seconds for seconds in imports]
            print(f"{service + ': exec to SERVING':<34} {figures(starts)}")
            print(f"{'  baseline: bare + its imports':<34} {figures(baseline)}")
        return 0
    finally:
        kafka.stop()


if __name__ == "__main__":
    sys.exit(main())
