"""BenchmarkService over real gRPC on loopback, authenticated by introspection at the intake stand-in."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from preflight.benchmark.v1 import benchmark_pb2, benchmark_pb2_grpc, events_pb2
from preflight.sdk import AsyncPreflight, NotFound, PermissionDenied, Preflight
from preflight_benchmark.adapters.eval_logs import EvalLogs
from preflight_benchmark.adapters.grpc import BenchmarkServicer
from preflight_benchmark.adapters.store import JobStore
from preflight_benchmark.adapters.tables import outbox
from preflight_benchmark.bootstrap import migrate
from preflight_common.auth import IntrospectionAuthenticator, Principal, Role
from preflight_common.db import make_engine
from preflight_common.grpcserver import build_server
from preflight_testkit.benchmark import IntakeStandIn, LoopThread, plan_pending
from preflight_testkit.rpc import field_violations
from sqlalchemy import select

NOW = datetime.now(UTC)
# The planned jobs may run now.
WINDOW = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))


@dataclass
class Api:
    stub: benchmark_pb2_grpc.BenchmarkServiceStub
    store: JobStore
    intake: IntakeStandIn
    target: str
    log_root: Path

    def auth(self, token: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {token}")]


@pytest.fixture(scope="module")
def api(intake: IntakeStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('grpc')) / 'benchmark.db'}"
    migrate(url)
    engine = make_engine(url)
    store = JobStore(engine, jobs_topic="jobs", results_topic="results")
    log_root = tmp_path_factory.mktemp("eval-logs")
    servicer = BenchmarkServicer(store, eval_logs=EvalLogs(str(log_root)))
    loop = LoopThread("benchmark-grpc")

    async def start() -> tuple[grpc.aio.Server, int]:
        server, port, _ = build_server(
            "127.0.0.1:0",
            [lambda s: benchmark_pb2_grpc.add_BenchmarkServiceServicer_to_server(servicer, s)],
            authenticator=IntrospectionAuthenticator(intake.target, intake.service_token),
            service_names=["preflight.benchmark.v1.BenchmarkService"],
        )
        await server.start()
        return server, port

    server, port = loop.run(start())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield Api(benchmark_pb2_grpc.BenchmarkServiceStub(channel), store, intake, f"127.0.0.1:{port}", log_root)
    channel.close()
    loop.run(server.stop(0))
    loop.close()
    engine.dispose()


def test_calls_without_a_valid_token_are_unauthenticated(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        api.stub.ListJobs(benchmark_pb2.ListJobsRequest())
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as unknown:
        api.stub.ListJobs(benchmark_pb2.ListJobsRequest(), metadata=api.auth("pft_nope"))
    assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_operators_may_not_read_jobs(api: Api) -> None:
    with pytest.raises(grpc.RpcError) as denied:
        api.stub.ListJobs(benchmark_pb2.ListJobsRequest(), metadata=api.auth(api.intake.operator_token))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_probe_lists_no_job_and_may_read_nothing_else(api: Api) -> None:
    (job,) = plan_pending(api.store, "sub-probed", "preflight", ["a"], WINDOW)
    # Its organisation is the job's, and still it sees nothing: a probe reads no job.
    probe = api.auth(api.intake.tokens.create(Principal("helm-test", Role.PROBE, "preflight")).token)
    listed = api.stub.ListJobs(benchmark_pb2.ListJobsRequest(page_size=1), metadata=probe)
    assert list(listed.jobs) == [] and listed.next_page_token == ""
    with pytest.raises(grpc.RpcError) as denied:
        api.stub.GetJob(benchmark_pb2.GetJobRequest(job_id=job), metadata=probe)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_lab_sees_only_its_own_organisations_jobs(api: Api) -> None:
    (mine,) = plan_pending(api.store, "sub-lab-a", "lab-a", ["a"], WINDOW)
    (theirs,) = plan_pending(api.store, "sub-lab-b", "lab-b", ["a"], WINDOW)
    lab_a = api.auth(api.intake.lab_token("lab-a"))
    got = api.stub.GetJob(benchmark_pb2.GetJobRequest(job_id=mine), metadata=lab_a)
    assert got.job.status == benchmark_pb2.JOB_STATUS_PENDING
    with pytest.raises(grpc.RpcError) as hidden:
        api.stub.GetJob(benchmark_pb2.GetJobRequest(job_id=theirs), metadata=lab_a)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    listed = api.stub.ListJobs(benchmark_pb2.ListJobsRequest(), metadata=lab_a)
    assert {j.organisation for j in listed.jobs} == {"lab-a"}


def test_reviewers_page_through_every_job(api: Api) -> None:
    plan_pending(api.store, "sub-paged", "lab-c", ["a", "b", "c"], WINDOW)
    reviewer = api.auth(api.intake.reviewer_token)
    seen, token = [], ""
    while True:
        page = api.stub.ListJobs(
            benchmark_pb2.ListJobsRequest(submission_id="sub-paged", page_size=2, page_token=token),
            metadata=reviewer,
        )
        seen += [j.job_id for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 3


def test_page_tokens_are_sealed_so_a_forged_or_edited_cursor_is_refused(api: Api) -> None:
    plan_pending(api.store, "sub-sealed", "lab-d", ["a", "b"], WINDOW)
    lab = api.auth(api.intake.lab_token("lab-d"))
    first = api.stub.ListJobs(benchmark_pb2.ListJobsRequest(page_size=1), metadata=lab)
    token = first.next_page_token
    assert token and first.jobs[0].job_id.encode() not in base64.urlsafe_b64decode(token + "===")
    forged = base64.urlsafe_b64encode(json.dumps(["1970-01-01T00:00:00+00:00", ""]).encode()).decode()
    edited = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in (forged, edited, "9" * 40):
        with pytest.raises(grpc.RpcError) as refused:
            api.stub.ListJobs(benchmark_pb2.ListJobsRequest(page_size=1, page_token=bad), metadata=lab)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(refused.value)) == ["page_token"]
    rest = api.stub.ListJobs(benchmark_pb2.ListJobsRequest(page_size=5, page_token=token), metadata=lab)
    assert len(rest.jobs) == 1 and rest.jobs[0].job_id != first.jobs[0].job_id


def test_bad_list_requests_name_their_fields(api: Api) -> None:
    reviewer = api.auth(api.intake.reviewer_token)
    with pytest.raises(grpc.RpcError) as bad:
        api.stub.ListJobs(
            benchmark_pb2.ListJobsRequest(
                page_size=500, page_token="%%%", statuses=[benchmark_pb2.JOB_STATUS_UNSPECIFIED]
            ),
            metadata=reviewer,
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(bad.value)) == ["page_size", "statuses", "page_token"]
    with pytest.raises(grpc.RpcError) as empty:
        api.stub.GetJob(benchmark_pb2.GetJobRequest(), metadata=reviewer)
    assert list(field_violations(empty.value)) == ["job_id"]


def _results(store: JobStore) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(outbox.c.event_id).where(outbox.c.topic == "results")).scalars())


def test_only_the_running_attempt_can_report_and_only_once(api: Api) -> None:
    (job,) = plan_pending(api.store, "sub-report", "lab-a", ["a"], WINDOW)
    service = api.auth(api.intake.job_token(job))  # the attempt's worker
    completed = benchmark_pb2.ReportJobResultRequest(
        job_id=job, attempt=1, completed=events_pb2.BenchmarkCompleted(samples_total=3)
    )
    # Neither a lab, nor the service's own token, nor another job's worker reports for this job.
    for token in (api.intake.lab_token("lab-a"), api.intake.service_token, api.intake.job_token("bj-other")):
        with pytest.raises(grpc.RpcError) as denied:
            api.stub.ReportJobResult(completed, metadata=api.auth(token))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as pending:
        api.stub.ReportJobResult(completed, metadata=service)
    assert pending.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    api.store.start_attempt(api.store.get(job), NOW)  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as invalid:
        api.stub.ReportJobResult(benchmark_pb2.ReportJobResultRequest(job_id=job), metadata=service)
    assert list(field_violations(invalid.value)) == ["attempt", "outcome"]
    with pytest.raises(grpc.RpcError) as unknown:
        api.stub.ReportJobResult(
            benchmark_pb2.ReportJobResultRequest(job_id="bj-x", attempt=1, completed=completed.completed),
            metadata=api.auth(api.intake.job_token("bj-x")),
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    first = api.stub.ReportJobResult(completed, metadata=service)
    assert (first.accepted, first.status) == (True, benchmark_pb2.JOB_STATUS_COMPLETED)
    again = api.stub.ReportJobResult(completed, metadata=service)
    assert (again.accepted, again.status) == (False, benchmark_pb2.JOB_STATUS_COMPLETED)
    with pytest.raises(grpc.RpcError) as stale:
        api.stub.ReportJobResult(
            benchmark_pb2.ReportJobResultRequest(job_id=job, attempt=2, completed=completed.completed),
            metadata=service,
        )
    assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _results(api.store).count(f"{job}/ended") == 1
    stored = events_pb2.BenchmarkCompleted.FromString(api.store.get(job).result or b"")  # type: ignore[union-attr]
    assert (stored.job_id, stored.submission_id, stored.attempt, stored.samples_total) == (
        job,
        "sub-report",
        1,
        3,
    )


def test_a_retryable_reported_failure_queues_another_attempt_without_an_event(api: Api) -> None:
    (job,) = plan_pending(api.store, "sub-retry", "lab-a", ["a"], WINDOW)
    api.store.start_attempt(api.store.get(job), NOW)  # type: ignore[arg-type]
    service = api.auth(api.intake.job_token(job))
    failed = events_pb2.BenchmarkFailed(
        reason=events_pb2.FAILURE_REASON_MODEL_UNREACHABLE, message="connection refused", retryable=True
    )
    answer = api.stub.ReportJobResult(
        benchmark_pb2.ReportJobResultRequest(job_id=job, attempt=1, failed=failed), metadata=service
    )
    assert (answer.accepted, answer.status) == (True, benchmark_pb2.JOB_STATUS_PENDING)
    assert f"{job}/ended" not in _results(api.store)
    api.store.start_attempt(api.store.get(job), NOW)  # type: ignore[arg-type]
    final = api.stub.ReportJobResult(
        benchmark_pb2.ReportJobResultRequest(job_id=job, attempt=2, failed=failed), metadata=service
    )
    assert final.status == benchmark_pb2.JOB_STATUS_FAILED, "the second of two attempts fails the job"
    ended = events_pb2.BenchmarkFailed.FromString(api.store.get(job).result or b"")  # type: ignore[union-attr]
    assert (ended.reason, ended.retryable, ended.attempt) == (
        events_pb2.FAILURE_REASON_MODEL_UNREACHABLE,
        True,
        2,
    )


def test_the_sdk_reads_and_pages_jobs_as_whoever_may_see_them(api: Api) -> None:
    ids = plan_pending(api.store, "sub-sdk", "lab-sdk", ["a", "b", "c"], WINDOW)
    (foreign,) = plan_pending(api.store, "sub-sdk-other", "lab-sdk-other", ["a"], WINDOW)
    targets = {"benchmark": api.target}
    with (
        Preflight(targets=targets, token=api.intake.reviewer_token) as reviewer,
        Preflight(targets=targets, token=api.intake.lab_token("lab-sdk")) as lab,
        Preflight(targets=targets, token=api.intake.operator_token) as operator,
    ):
        listed = [j.job_id for j in reviewer.benchmark.iter_jobs(submission_id="sub-sdk", page_size=2)]
        assert sorted(listed) == sorted(ids)
        page = lab.benchmark.list_jobs(statuses=[benchmark_pb2.JOB_STATUS_PENDING], page_size=1)
        assert len(page.jobs) == 1 and page.next_page_token
        assert lab.benchmark.get_job(ids[0]).submission_id == "sub-sdk"
        with pytest.raises(NotFound):
            lab.benchmark.get_job(foreign)
        with pytest.raises(PermissionDenied):
            operator.benchmark.list_jobs()

    async def asynchronously() -> tuple[str, list[str]]:
        async with AsyncPreflight(targets=targets, token=api.intake.lab_token("lab-sdk")) as lab:
            job = await lab.benchmark.get_job(ids[1])
            mine = [j.job_id async for j in lab.benchmark.iter_jobs(submission_id="sub-sdk")]
            with pytest.raises(NotFound):
                await lab.benchmark.get_job(foreign)
        return job.job_id, mine

    job, mine = asyncio.run(asynchronously())
    assert job == ids[1] and sorted(mine) == sorted(ids)


def test_many_submissions_jobs_are_counted_by_status_in_one_call(api: Api) -> None:
    done, crashed, _ = plan_pending(api.store, "sub-sum-a", "lab-sum", ["a", "b", "c"], WINDOW)
    (theirs,) = plan_pending(api.store, "sub-sum-b", "lab-sum-other", ["a"], WINDOW)
    for job in (done, crashed):
        api.store.start_attempt(api.store.get(job), NOW)  # type: ignore[arg-type]
    completed = events_pb2.BenchmarkCompleted(samples_total=1)
    api.stub.ReportJobResult(
        benchmark_pb2.ReportJobResultRequest(job_id=done, attempt=1, completed=completed),
        metadata=api.auth(api.intake.job_token(done)),
    )
    failed = events_pb2.BenchmarkFailed(reason=events_pb2.FAILURE_REASON_CONFIG_ERROR, message="bad")
    api.stub.ReportJobResult(
        benchmark_pb2.ReportJobResultRequest(job_id=crashed, attempt=1, failed=failed),
        metadata=api.auth(api.intake.job_token(crashed)),
    )
    asked = ["sub-sum-b", "sub-unplanned", "sub-sum-a", "sub-sum-b"]

    def counts(token: str) -> list[tuple[str, int, int, int, int, int]]:
        answer = api.stub.SummarizeJobs(
            benchmark_pb2.SummarizeJobsRequest(submission_ids=asked), metadata=api.auth(token)
        )
        return [
            (s.submission_id, s.planned, s.pending, s.running, s.completed, s.failed)
            for s in answer.summaries
        ]

    assert counts(api.intake.reviewer_token) == [("sub-sum-b", 1, 1, 0, 0, 0), ("sub-sum-a", 3, 1, 0, 1, 1)]
    # A lab's summary leaves out another organisation's submission, as if it had no jobs.
    assert counts(api.intake.lab_token("lab-sum")) == [("sub-sum-a", 3, 1, 0, 1, 1)]
    with Preflight(targets={"benchmark": api.target}, token=api.intake.reviewer_token) as reviewer:
        assert [s.submission_id for s in reviewer.benchmark.summarize_jobs(["sub-sum-a"])] == ["sub-sum-a"]
    with pytest.raises(grpc.RpcError) as denied:
        api.stub.SummarizeJobs(
            benchmark_pb2.SummarizeJobsRequest(submission_ids=[theirs]),
            metadata=api.auth(api.intake.operator_token),
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_summary_request_names_1_to_200_submissions_none_empty(api: Api) -> None:
    reviewer = api.auth(api.intake.reviewer_token)
    for ids in ([], [f"sub-{i}" for i in range(201)], ["sub-a", ""]):
        with pytest.raises(grpc.RpcError) as bad:
            api.stub.SummarizeJobs(benchmark_pb2.SummarizeJobsRequest(submission_ids=ids), metadata=reviewer)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(bad.value)) == ["submission_ids"]
    at_most = api.stub.SummarizeJobs(
        benchmark_pb2.SummarizeJobsRequest(submission_ids=[f"sub-{i}" for i in range(200)]), metadata=reviewer
    )
    assert list(at_most.summaries) == []


def _one_sample_log(folder: Path) -> str:
    """An eval log Inspect wrote in `folder`: one sample, scored by exact match, of the mock model."""
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import exact

    answer = ModelOutput.from_content(model="mockllm/model", content="2")
    # Its usage given, so that Inspect does not fetch a tokenizer to count it.
    answer.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    model = get_model("mockllm/model", custom_outputs=[answer])
    task = Task(dataset=[Sample(input="Say 2", target="2", id="s-1")], scorer=exact(), name="tiny")
    (log,) = inspect_eval(task, model=model, log_dir=str(folder), display="none")
    return str(log.location)


def _ended_with_log(api: Api, submission_id: str, eval_log_uri: str) -> str:
    (job,) = plan_pending(api.store, submission_id, "lab-logs", ["a"], WINDOW)
    api.store.start_attempt(api.store.get(job), NOW)  # type: ignore[arg-type]
    completed = events_pb2.BenchmarkCompleted(samples_total=1, eval_log_uri=eval_log_uri)
    api.stub.ReportJobResult(
        benchmark_pb2.ReportJobResultRequest(job_id=job, attempt=1, completed=completed),
        metadata=api.auth(api.intake.job_token(job)),
    )
    return job


def test_reviewers_read_a_jobs_eval_log_summary_and_bytes(api: Api) -> None:
    location = _one_sample_log(api.log_root / "sub-logs" / "attempt")
    job = _ended_with_log(api, "sub-logs", location)
    reviewer = api.auth(api.intake.reviewer_token)
    summary = api.stub.GetEvalLog(benchmark_pb2.GetEvalLogRequest(job_id=job), metadata=reviewer)
    assert (summary.name, summary.task, summary.model, summary.status) == (
        Path(location).name,
        "tiny",
        "mockllm/model",
        "success",
    )
    assert [(m.score, m.metric, m.value) for m in summary.metrics][:1] == [("exact", "mean", 1.0)]
    assert [(s.sample_id, s.epoch, list(s.scores)) for s in summary.samples] == [("s-1", 1, ["exact"])]
    chunks = list(api.stub.ReadEvalLog(benchmark_pb2.ReadEvalLogRequest(job_id=job), metadata=reviewer))
    assert {c.name for c in chunks} == {Path(location).name}
    assert b"".join(c.data for c in chunks) == Path(location).read_bytes()
    rest = api.stub.ReadEvalLog(benchmark_pb2.ReadEvalLogRequest(job_id=job, offset=10), metadata=reviewer)
    assert b"".join(c.data for c in rest) == Path(location).read_bytes()[10:]
    # A range, as Inspect's viewer asks for one; each chunk says how long the whole log is.
    size = Path(location).stat().st_size
    ranged = list(
        api.stub.ReadEvalLog(
            benchmark_pb2.ReadEvalLogRequest(job_id=job, offset=5, length=7), metadata=reviewer
        )
    )
    assert b"".join(c.data for c in ranged) == Path(location).read_bytes()[5:12]
    assert {c.size for c in ranged} == {size}
    past = list(
        api.stub.ReadEvalLog(benchmark_pb2.ReadEvalLogRequest(job_id=job, offset=size + 1), metadata=reviewer)
    )
    assert [(c.data, c.size) for c in past] == [(b"", size)]
    with Preflight(targets={"benchmark": api.target}, token=api.intake.reviewer_token) as sdk:
        assert sdk.benchmark.get_eval_log(job).samples[0].sample_id == "s-1"
        assert b"".join(c.data for c in sdk.benchmark.read_eval_log(job)) == Path(location).read_bytes()
        assert (
            b"".join(c.data for c in sdk.benchmark.read_eval_log(job, offset=3, length=4))
            == (Path(location).read_bytes()[3:7])
        )


def test_eval_logs_outside_the_submissions_folder_are_never_read(api: Api) -> None:
    elsewhere = _one_sample_log(api.log_root / "sub-other" / "attempt")
    secret = api.log_root.parent / "service.key"
    secret.write_text("not for reviewers")
    reviewer = api.auth(api.intake.reviewer_token)
    for n, reported in enumerate(
        [
            elsewhere,
            str(secret),
            str(api.log_root / "sub-outside-0" / ".." / "sub-other"),
            "s3://bucket/x.eval",
        ]
    ):
        job = _ended_with_log(api, f"sub-outside-{n}", reported)
        for call, request in (
            (api.stub.GetEvalLog, benchmark_pb2.GetEvalLogRequest(job_id=job)),
            (api.stub.ReadEvalLog, benchmark_pb2.ReadEvalLogRequest(job_id=job)),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                list(call(request, metadata=reviewer)) if call is api.stub.ReadEvalLog else call(
                    request, metadata=reviewer
                )
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, reported
    # A log index the job does not have, and a job there is not.
    with pytest.raises(grpc.RpcError) as missing:
        api.stub.GetEvalLog(benchmark_pb2.GetEvalLogRequest(job_id=job, index=3), metadata=reviewer)
    assert missing.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as unknown:
        api.stub.GetEvalLog(benchmark_pb2.GetEvalLogRequest(job_id="bj-none"), metadata=reviewer)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad:
        api.stub.GetEvalLog(benchmark_pb2.GetEvalLogRequest(index=-1), metadata=reviewer)
    assert list(field_violations(bad.value)) == ["job_id", "index"]


def test_only_reviewers_read_eval_logs(api: Api) -> None:
    location = _one_sample_log(api.log_root / "sub-own" / "attempt")
    job = _ended_with_log(api, "sub-own", location)
    # Not even the lab whose job it is, nor the service's own token.
    for token in (api.intake.lab_token("lab-logs"), api.intake.operator_token, api.intake.service_token):
        with pytest.raises(grpc.RpcError) as denied:
            api.stub.GetEvalLog(benchmark_pb2.GetEvalLogRequest(job_id=job), metadata=api.auth(token))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as denied:
            list(api.stub.ReadEvalLog(benchmark_pb2.ReadEvalLogRequest(job_id=job), metadata=api.auth(token)))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
