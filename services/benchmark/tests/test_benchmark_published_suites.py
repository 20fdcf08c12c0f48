"""Published Inspect tasks in the catalog: pinned packages and declared data sources are parsed and
checked without running (task resolves in Inspect's registry, arguments fit its signature); a
data file is taken from the mirror only with the declared digest, and the dataset-backed task
runs on its mirrored copy."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model
from preflight.benchmark.v1 import events_pb2
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.domain.catalog import CatalogError, DataSource, parse_catalog
from preflight_benchmark.domain.jobs import FailureReason
from preflight_benchmark.reference_model.server import ReferenceModelServer
from preflight_benchmark.suites.published import DataFetchError, check_suite, fetch_data
from preflight_benchmark.worker.run import WorkerFailure, fetch_suite_data

DATA = Path(__file__).parent / "data"
QUESTIONS = {
    "questions": [
        {
            "question": "Which port does HTTPS use by default?",
            "answers": {"A": "80", "B": "443"},
            "solution": "B",
        },
        {
            "question": "What does XSS stand for?",
            "answers": {"A": "Cross-site scripting", "B": "XML"},
            "solution": "A",
        },
    ]
}


def _published() -> dict[str, Any]:
    loaded = yaml.safe_load((DATA / "catalog_published.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _suite_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "catalog_version": "t",
        "suites": [
            {
                "id": "cyber.x",
                "version": "1",
                "task": "preflight_benchmark/knowledge",
                "capability": "c",
                "access_kinds": ["endpoint", "weights"],
                "timeout_seconds": 60,
                **overrides,
            }
        ],
    }
    return doc


def test_the_published_catalog_pins_packages_and_declares_its_data() -> None:
    catalog = parse_catalog(_published())
    assert catalog.data_mirror == "/srv/preflight/data-mirror"
    cybermetric = catalog.suite("cyber.cybermetric-80", "1.0.0")
    assert cybermetric is not None and cybermetric.data[0].arg == "dataset"
    assert cybermetric.data[0].sha256 == "1624aeecc54761198bff4828442ce4a10de6cb87c9da3298088b34ae11e15ba0"
    pinned = {s.id: s.package for s in catalog.suites if s.package is not None}
    assert {p.name for p in pinned.values() if p} == {"inspect-evals"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"package": {"name": "inspect evals", "version": "1"}}, "suites[0].package.name"),
        ({"package": {"name": "inspect-evals"}}, "suites[0].package.version"),
        ({"data": [{"arg": "dataset", "url": "http://x/y", "sha256": "0" * 64}]}, "suites[0].data[0].url"),
        ({"data": [{"arg": "dataset", "url": "https://x/y", "sha256": "ABC"}]}, "suites[0].data[0].sha256"),
        (
            {
                "task_args": {"dataset": "a"},
                "data": [{"arg": "dataset", "url": "https://x/y", "sha256": "0" * 64}],
            },
            "suites[0].data[0].arg",
        ),
    ],
)
def test_malformed_pins_and_data_sources_are_refused_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(CatalogError, match=f"^{re.escape(field)}:"):
        parse_catalog({**_suite_doc(**overrides), "data_mirror": "/m"})


def test_data_without_a_mirror_is_refused() -> None:
    with pytest.raises(CatalogError, match=r"suites\[0\]\.data: the catalog names no data_mirror"):
        parse_catalog(_suite_doc(data=[{"arg": "dataset", "url": "https://x/y", "sha256": "0" * 64}]))


def test_shipped_and_mirrored_tasks_resolve_with_well_typed_arguments() -> None:
    for suite in load_catalog().suites:
        check_suite(suite)
    cybermetric = parse_catalog(_published()).suite("cyber.cybermetric-80", "1.0.0")
    assert cybermetric is not None
    check_suite(cybermetric)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"task": "preflight_benchmark/no_such_task"}, r"\.task: 'preflight_benchmark/no_such_task' is not"),
        ({"task_args": {"difficulty": 3}}, r"\.task_args: got an unexpected keyword argument 'difficulty'"),
        (
            {"task": "preflight_benchmark/cyber_mcq", "task_args": {"dataset": 7}},
            r"\.task_args\.dataset: expected",
        ),
        ({"task": "preflight_benchmark/cyber_mcq"}, r"\.task_args: missing a required argument: 'dataset'"),
        (
            {"package": {"name": "inspect_ai", "version": "0.0.1"}},
            r"\.package: inspect_ai .* the catalog pins 0\.0\.1",
        ),
    ],
)
def test_a_suite_that_could_not_run_is_named_with_its_field(overrides: dict[str, Any], message: str) -> None:
    [suite] = parse_catalog(_suite_doc(**overrides)).suites
    with pytest.raises(CatalogError, match=message):
        check_suite(suite)


def test_tasks_of_a_package_that_is_not_installed_are_refused_by_their_pin() -> None:
    suites = [s for s in parse_catalog(_published()).suites if s.package is not None]
    assert suites
    for suite in suites:
        with pytest.raises(CatalogError, match=r"\.package: inspect-evals==0\.26\.0 is not installed"):
            check_suite(suite)


def _mirror(tmp_path: Path) -> tuple[Path, DataSource]:
    content = json.dumps(QUESTIONS).encode()
    digest = hashlib.sha256(content).hexdigest()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / digest).write_bytes(content)
    return mirror, DataSource(arg="dataset", url="https://example.org/questions.json", sha256=digest)


def test_data_comes_from_the_mirror_with_its_digest_checked(tmp_path: Path) -> None:
    mirror, source = _mirror(tmp_path)
    copy = fetch_data(source, str(mirror), tmp_path / "data")
    assert json.loads(copy.read_text()) == QUESTIONS

    (mirror / source.sha256).write_bytes(b'{"questions": []}')
    with pytest.raises(DataFetchError, match=r"has digest .* the catalog declares"):
        fetch_data(source, str(mirror), tmp_path / "other")
    assert list((tmp_path / "other").iterdir()) == []
    with pytest.raises(DataFetchError, match="mirror"):
        fetch_data(source, str(tmp_path / "no-mirror"), tmp_path / "other")


@pytest.mark.slow
def test_the_dataset_backed_task_runs_on_its_mirrored_copy(tmp_path: Path) -> None:
    mirror, source = _mirror(tmp_path)
    copy = fetch_data(source, str(mirror), tmp_path / "data")
    server = ReferenceModelServer(mode="oracle", model_name="oracle", api_key="k").start()
    try:
        model = get_model("openai-api/ref/oracle", base_url=server.base_url, api_key="k", memoize=False)
        [log] = inspect_eval(
            "preflight_benchmark/cyber_mcq",
            task_args={"dataset": str(copy)},
            model=model,
            log_dir=str(tmp_path / "logs"),
            display="none",
        )
    finally:
        server.stop()
    assert log.status == "success", log.error
    assert log.results is not None and log.results.total_samples == len(QUESTIONS["questions"])


def test_the_worker_passes_the_mirrored_copy_and_refuses_a_tampered_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror, source = _mirror(tmp_path)
    doc = _suite_doc(
        task="preflight_benchmark/cyber_mcq",
        data=[{"arg": "dataset", "url": source.url, "sha256": source.sha256}],
    )
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({**doc, "data_mirror": str(mirror)}), encoding="utf-8")
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_CATALOG_FILE", str(catalog))
    job = events_pb2.BenchmarkJobRequested(suite_id="cyber.x", suite_version="1")

    args = fetch_suite_data(job, tmp_path / "cache")
    assert json.loads(Path(args["dataset"]).read_text()) == QUESTIONS

    (mirror / source.sha256).write_bytes(b"tampered")
    with pytest.raises(WorkerFailure) as failure:
        fetch_suite_data(job, tmp_path / "fresh-cache")
    assert failure.value.reason == FailureReason.CONFIG_ERROR and not failure.value.retryable
    assert "the catalog declares" in failure.value.message
