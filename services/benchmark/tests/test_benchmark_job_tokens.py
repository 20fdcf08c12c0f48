"""Each local attempt's worker holds a token of its own job only: issued by the identity service (a
real loopback stand-in of intake) when the attempt starts, handed over as a 0600 file in the
attempt's folder, deleted once the attempt ended; the service's own token reaches no worker."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from preflight_benchmark.adapters.executors.local import LocalExecutor
from preflight_benchmark.adapters.grpc_clients import GrpcJobTokens
from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import AttemptEnd
from preflight_benchmark.domain.ports import JOB_TOKEN_MARGIN, Attempt
from preflight_common.auth import Principal, Role
from preflight_testkit.benchmark import IntakeStandIn

# An attempt that records what it was handed: its environment, and its token file's mode and text.
WORKER = """
import json, os, pathlib, stat, sys
from preflight_benchmark.worker.serve import serve

def attempt():
    spec = json.loads(pathlib.Path(os.environ["PREFLIGHT_WORKER_ASSIGNMENT_FILE"]).read_text())
    token = pathlib.Path(os.environ["PREFLIGHT_SERVICE_TOKEN_FILE"])
    seen = {
        "env": dict(os.environ),
        "token_file": str(token),
        "mode": stat.S_IMODE(token.stat().st_mode),
        "token": token.read_text().strip(),
        "files": {p.name: p.read_text(errors="replace") for p in pathlib.Path.cwd().iterdir() if p.is_file()},
    }
    pathlib.Path(spec["out"]).write_text(json.dumps(seen))
    return 0

sys.exit(serve(attempt))
"""


def attempt(job_id: str, out: Path, timeout: timedelta) -> Attempt:
    return Attempt(
        job_id=job_id,
        submission_id="sub-1",
        suite_id="cyber.test",
        attempt=1,
        access_kind="endpoint",
        resources=Resources(memory="1Gi"),
        timeout=timeout,
        assignment=json.dumps({"out": str(out)}),
    )


async def run_attempts(executor: LocalExecutor, attempts: list[Attempt]) -> set[AttemptEnd]:
    try:
        return {(await executor.run(each)).end for each in attempts}
    finally:
        await executor.close()


def test_each_attempt_gets_a_private_token_of_its_own_job_and_never_the_service_token(
    intake: IntakeStandIn, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    executor = LocalExecutor(
        work_root=tmp_path / "work",
        worker_command=[sys.executable, str(script)],
        worker_env={"PATH": "/usr/bin:/bin"},
        job_tokens=GrpcJobTokens(intake.target, intake.service_token),
    )
    timeout = timedelta(minutes=10)
    jobs = ("bj-1", "bj-2")
    started = datetime.now(UTC)
    ends = asyncio.run(
        run_attempts(executor, [attempt(job, tmp_path / f"{job}.json", timeout) for job in jobs])
    )
    assert ends == {AttemptEnd.EXITED}
    seen = {job: json.loads((tmp_path / f"{job}.json").read_text()) for job in jobs}
    for job, what in seen.items():
        assert Path(what["token_file"]).parent == executor.folder(job, 1)
        assert what["mode"] == 0o600
        resolved = intake.tokens.resolve(what["token"])
        assert resolved is not None
        principal, _, expires = resolved
        assert principal == Principal(job, Role.WORKER, "preflight")
        # Expires at the attempt's deadline plus the margin: soon, not in the service token's 90 days.
        latest = datetime.now(UTC) + timeout + JOB_TOKEN_MARGIN
        assert started + timeout + JOB_TOKEN_MARGIN <= expires <= latest
        # The service's token is nowhere the attempt can read: not its environment, not its files.
        assert intake.service_token not in json.dumps(what)
        assert not Path(what["token_file"]).exists(), "the token file outlived the attempt"
    assert seen["bj-1"]["token"] != seen["bj-2"]["token"]
