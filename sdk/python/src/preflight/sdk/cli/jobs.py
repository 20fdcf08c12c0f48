"""`preflight job`: benchmark jobs, read-only (reviewers see every job, a lab its own)."""

from __future__ import annotations

import argparse

from preflight.benchmark.v1 import benchmark_pb2
from preflight.sdk.cli._core import Choice, Context, Noun, Verb, fields, limit_option, spelling, take, when

STATUS = Choice(benchmark_pb2.JobStatus)


def describe(j: benchmark_pb2.Job) -> str:
    return fields(
        [
            ("job", j.job_id),
            ("submission", j.submission_id),
            ("suite", f"{j.suite_id} {j.suite_version} ({j.capability})"),
            ("status", f"{STATUS.name(j.status)} (attempt {j.attempt} of {j.max_attempts})"),
            ("window", f"{when(j.not_before)} → {when(j.not_after)}"),
            ("executor", j.executor or "-"),
            ("message", j.message or "-"),
        ]
    )


def _list(ctx: Context, args: argparse.Namespace) -> None:
    jobs = ctx.preflight.benchmark.iter_jobs(
        submission_id=args.submission or "", statuses=[STATUS.value(s) for s in args.status]
    )
    ctx.table(
        take(jobs, args.limit),
        [
            ("JOB", lambda j: j.job_id),
            ("SUBMISSION", lambda j: j.submission_id),
            ("SUITE", lambda j: j.suite_id),
            ("STATUS", lambda j: STATUS.name(j.status)),
            ("ATTEMPT", lambda j: str(j.attempt)),
        ],
    )


def _show(ctx: Context, args: argparse.Namespace) -> None:
    job = ctx.preflight.benchmark.get_job(args.job_id)
    ctx.show(job, lambda: describe(job))


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--submission", metavar="SUBMISSION_ID", help="only this submission's jobs")
    parser.add_argument(
        "--status", action="append", default=[], choices=STATUS.choices, type=spelling, help="repeatable"
    )
    limit_option(parser, 200)


NOUN = Noun(
    "job",
    "benchmark jobs of a submission",
    (
        Verb(
            "list",
            "the jobs you may see, oldest first",
            "preflight job list --submission SUBMISSION_ID",
            _list,
            _list_arguments,
        ),
        Verb("show", "one job", "preflight job show JOB_ID", _show, lambda p: p.add_argument("job_id")),
    ),
)
