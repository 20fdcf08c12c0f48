"""What the benchmark server process imports to start: no Kubernetes client, no Inspect AI.

The Kubernetes client (only the Kubernetes executor needs it) and Inspect AI (only the worker
runs evaluations) take seconds to import; a server process that imported them would start that
much later on every restart. Checked in a fresh interpreter, whose `sys.modules` is that of a
process importing the server's entry points.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
