"""The repository's pytest configuration hides the Kafka clients' import-time deprecation noise,
and nothing more: a deprecation in our own code still shows."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from preflight_common.localkafka import find_repo_root

REPO_ROOT = find_repo_root(Path(__file__).parent)

PROBE = textwrap.dedent(
    """
    import warnings

    import aiokafka
    import kafka
    import kafka.admin

    import preflight_common.consumer
    import preflight_common.outbox
    import preflight_common.topics


    def test_clients_are_imported():
        assert kafka and kafka.admin and aiokafka


    def test_our_own_deprecation_shows():
        warnings.warn("preflight probe: deprecated on purpose", DeprecationWarning, stacklevel=1)
    """
)


def test_only_the_kafka_clients_import_noise_is_filtered(tmp_path: Path) -> None:
    probe = tmp_path / "test_warnings_probe.py"
    probe.write_text(PROBE)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-c",
            str(REPO_ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            str(probe),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "2 passed, 1 warning" in output, output
    assert "preflight probe: deprecated on purpose" in output


def test_no_blanket_warning_filter() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    for entry in config["tool"]["pytest"]["ini_options"].get("filterwarnings", []):
        action, message, _category, module = ([*entry.split(":"), "", "", ""])[:4]
        assert action != "ignore" or message or module, f"filter {entry!r} silences a whole category"
