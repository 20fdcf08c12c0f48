"""What resuming a killed attempt saves: the attempt after a kill resumes its log, next to starting again.

    python bench/eval_resume.py [--suite cyber.knowledge] [--delay 0.5] [--kill-at 0.5]

Runs one suite of the shipped catalog (all its samples) the way a worker does
(`preflight_benchmark.worker.run.run_inspect`, an eval set in the job's log folder) in a fresh
process against the scripted reference model on loopback, whose answers take `--delay` seconds.
Once `--kill-at` of the samples are written to the eval log the process is killed (SIGKILL, as a
crashed worker), then the suite runs again in a fresh process, twice: in the same folder (the
retried attempt, which resumes the log) and in an empty one (what a retried attempt did before:
start again). Prints the wall and CPU time of each run and the requests it sent the model;
both include the same process start and Inspect import.

Bounded: about a minute with the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inspect_ai.log import read_eval_log, read_eval_log_sample_summaries
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.reference_model.server import ReferenceModelServer

ATTEMPT = """
import sys
from preflight.benchmark.v1 import events_pb2
from preflight_benchmark.worker.run import ModelAccess, WorkerSettings, harden_environment, run_inspect
task, base_url, log_dir = sys.argv[1:4]
harden_environment()
job = events_pb2.BenchmarkJobRequested(job_id="bj-bench", submission_id="sub-bench", task_ref=task)
access = ModelAccess("openai-api/preflight/reference", base_url, "sk-bench")
(log,) = run_inspect(job, access, log_dir, WorkerSettings())
assert log.status == "success", log.status
"""


def logged_samples(folder: Path) -> int:
    """Samples written to the eval logs in `folder` so far (a log mid-write reads on the next poll)."""
    written = 0
    for log in folder.glob("*.eval"):
        with contextlib.suppress(Exception):
            written = max(written, len(read_eval_log_sample_summaries(str(log))))
    return written


def dataset_size(folder: Path) -> int:
    """Samples in the suite's run, once its log's header is written (0 before)."""
    for log in folder.glob("*.eval"):
        with contextlib.suppress(Exception):
            return read_eval_log(str(log), header_only=True).eval.dataset.samples or 0
    return 0


def attempt(task: str, server: ReferenceModelServer, folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", ATTEMPT, task, server.base_url, str(folder)],
        env={**os.environ, "XDG_DATA_HOME": str(folder.parent / f"{folder.name}-data")},
        start_new_session=True,
    )


def timed(task: str, server: ReferenceModelServer, folder: Path) -> tuple[float, float, int]:
    """Wall time and CPU time of a whole attempt, and the model requests it sent."""
    before, started = server.requests, time.perf_counter()
    process = attempt(task, server, folder)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"attempt in {folder} exited with {process.returncode}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, server.requests - before


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", default="cyber.knowledge")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds the model takes per answer")
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of the samples logged at the kill")
    args = parser.parse_args()
    suite = next(s for s in load_catalog().suites if s.id == args.suite)
    server = ReferenceModelServer(model_name="reference", delay=args.delay).start()
    try:
        with tempfile.TemporaryDirectory(prefix="eval-resume-") as tmp:
            job_folder, fresh_folder = Path(tmp) / "job", Path(tmp) / "fresh"
            killed = attempt(suite.task, server, job_folder)
            started, size, total = time.perf_counter(), 0, 0
            while not size or total < args.kill_at * size:
                if killed.poll() is not None:
                    raise SystemExit("the attempt ended before it could be killed: raise --delay")
                time.sleep(0.05)
                size = size or dataset_size(job_folder)
                total = logged_samples(job_folder)
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait()
            elapsed = time.perf_counter() - started
            print(f"{suite.id}: killed after {elapsed:.1f} s with {total} of {size} samples logged")
            resumed = timed(suite.task, server, job_folder)
            fresh = timed(suite.task, server, fresh_folder)
            for name, (wall, cpu, requests) in (("resumed attempt", resumed), ("starting again", fresh)):
                print(f"  {name:16} {wall:6.1f} s wall, {cpu:5.1f} s CPU, {requests:3d} model requests")
            print(f"  saved:           {fresh[0] - resumed[0]:6.1f} s wall ({1 - resumed[0] / fresh[0]:.0%})")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
