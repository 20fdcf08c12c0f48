"""What the benchmark processes import: the server no Kubernetes client and no Inspect AI to start,
a warm worker everything an attempt's eval would import.

The Kubernetes client (only the Kubernetes executor needs it) and Inspect AI (only the worker
runs evaluations) take seconds to import; a server process that imported them would start that
much later on every restart. Checked in a fresh interpreter, whose `sys.modules` is that of a
process importing the server's entry points. A warm worker forks each attempt from what it
imported (`preload`): a module the attempt's eval imports after the fork costs every attempt again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from preflight_benchmark.reference_model.server import ReferenceModelServer

HEAVY = ("kubernetes", "inspect_ai")


@pytest.mark.parametrize(
    "module", ["preflight_benchmark.entrypoints.server", "preflight_benchmark.entrypoints.cli"]
)
def test_server_entry_points_import_neither_kubernetes_nor_inspect_ai(module: str) -> None:
    script = (
        f"import json, sys, {module}\n"
        f"print(json.dumps(sorted({{name.split('.')[0] for name in sys.modules}} & set({HEAVY!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(result.stdout) == []


# Run in a fresh interpreter: the warm worker's preload, then one attempt's eval of a shipped suite
# (a sample of each kind of step: the model, the scorer, the log written and read back), printing
# the top-level packages outside the standard library that the eval imported and the preload had not.
ATTEMPT_AFTER_PRELOAD = """
import json, os, sys
from preflight.benchmark.v1 import events_pb2
from preflight_benchmark.entrypoints.worker_cli import preload
from preflight_benchmark.worker.run import ModelAccess, WorkerSettings, run_inspect
preload()
before = set(sys.modules)
job = events_pb2.BenchmarkJobRequested(
    job_id="bj-preload", submission_id="s-preload", suite_id="cyber.knowledge", suite_version="1.0.0",
    task_ref="preflight_benchmark/knowledge", sample_limit=2,
)
access = ModelAccess(os.environ["MODEL_SPEC"], os.environ["MODEL_BASE_URL"], os.environ["MODEL_KEY"])
logs = run_inspect(job, access, os.environ["LOG_DIR"], WorkerSettings())
assert [log.status for log in logs] == ["success"], [log.status for log in logs]
packages = {name.split(".")[0] for name in set(sys.modules) - before}
print(json.dumps(sorted(packages - sys.stdlib_module_names)))
"""


def test_a_warm_workers_attempt_imports_no_package_its_eval_needs(
    reference_model: ReferenceModelServer, model_key: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "MODEL_SPEC": f"openai-api/preflight/{reference_model.model_name}",
        "MODEL_BASE_URL": reference_model.base_url,
        "MODEL_KEY": model_key,
        "LOG_DIR": str(tmp_path / "logs"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "INSPECT_DISPLAY": "none",
    }
    result = subprocess.run(
        [sys.executable, "-c", ATTEMPT_AFTER_PRELOAD],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env=env,
        cwd=tmp_path,
    )
    assert json.loads(result.stdout.splitlines()[-1]) == []
