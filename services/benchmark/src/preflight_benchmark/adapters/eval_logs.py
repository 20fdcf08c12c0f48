"""A job's eval logs read back for reviewers, from the service's log root and nowhere else.

A worker reports where it wrote its logs (`eval_log_uri`, comma-separated). The service reads a log
only when that location lies under `<log root>/<submission id>/`: a worker that reported another
path (another submission's log, a file of the service's own) gets nothing read. Logs are read with
Inspect's own reader (the summary) and fsspec (the bytes), so a folder, `s3://` and `gs://` roots
work alike.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Generator

import fsspec
from preflight.benchmark.v1 import benchmark_pb2

from preflight_benchmark.domain.records import JobRecord

CHUNK = 1024 * 1024
"""Bytes of each ReadEvalLog chunk."""


def _inside(location: str, folder: str) -> bool:
    """Whether `location` names a file under `folder` (a local folder or an object-store prefix)."""
    scheme, sep, _ = folder.partition("://")
    if sep:
        rest = location.removeprefix(f"{scheme}://")
        return (
            location.startswith(folder.rstrip("/") + "/")
            and ".." not in rest.split("/")
            and posixpath.normpath(rest) == rest
        )
    if "://" in location and not location.startswith("file://"):
        return False
    path = os.path.realpath(location.removeprefix("file://"))
    return path.startswith(os.path.realpath(folder) + os.sep)


class EvalLogs:
    """The eval logs under `log_root` (PREFLIGHT_BENCHMARK_LOG_ROOT)."""

    def __init__(self, log_root: str) -> None:
        self._root = log_root

    def location(self, job: JobRecord, index: int) -> str | None:
        """Where the job's `index`-th log is, when it is under the root's folder of the job's
        submission; None when the job has no such log or reported it elsewhere."""
        locations = [uri.strip() for uri in job.eval_log_uri.split(",") if uri.strip()]
        if not 0 <= index < len(locations):
            return None
        folder = posixpath.join(self._root.rstrip("/"), job.submission_id)
        return locations[index] if _inside(locations[index], folder) else None

    @staticmethod
    def summary(location: str) -> benchmark_pb2.GetEvalLogResponse:
        """What the log at `location` says: task, model, status, metrics and each sample's scores."""
        # Inspect takes seconds to import: the service pays for it when a summary is first asked
        # for, not at every start.
        from inspect_ai.log import read_eval_log, read_eval_log_sample_summaries

        header = read_eval_log(location, header_only=True)
        metrics = [
            benchmark_pb2.EvalMetric(score=score.name, metric=name, value=metric.value)
            for score in (header.results.scores if header.results else [])
            for name, metric in score.metrics.items()
        ]
        samples = [
            benchmark_pb2.EvalSample(
                sample_id=str(sample.id),
                epoch=sample.epoch,
                scores={name: json.dumps(score.value) for name, score in (sample.scores or {}).items()},
                error=sample.error or "",
            )
            for sample in read_eval_log_sample_summaries(location)
        ]
        return benchmark_pb2.GetEvalLogResponse(
            name=posixpath.basename(location),
            task=header.eval.task,
            model=header.eval.model,
            status=header.status,
            metrics=metrics,
            samples=samples,
        )

    @staticmethod
    def size(location: str) -> int:
        """The size in bytes of the log at `location`."""
        store, path = fsspec.core.url_to_fs(location)
        return int(store.size(path))

    @staticmethod
    def chunks(location: str, offset: int = 0, length: int = 0) -> Generator[bytes, None, None]:
        """The bytes of the log at `location` from `offset` on, `length` of them (0: to the end),
        `CHUNK` at a time."""
        left = length or None
        with fsspec.open(location, "rb") as file:
            file.seek(offset)
            while left is None or left > 0:
                chunk = file.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk
