"""Clearinghouse: the first export of each format in a fresh process, next to a warm export.

    python bench/clearinghouse_first_export.py [--runs 3]

Each run starts a fresh interpreter that builds the clearinghouse (which loads the OSV schema
validator and the CWE catalog at start-up), reports one finding and exports it in every format
twice. Prints, per format, the median and max of the first export (what the first caller after a
start waits) next to the baseline measured in the same process: the second export of the same
finding. Also prints how long building the service took. Bounded to a minute on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap

RUN = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from preflight_testkit.clearinghouse import REVIEWER, ManualClock, make_components, report_input
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from preflight_clearinghouse.adapters.signing import ReportSigner
    from preflight_clearinghouse.domain.findings.exports import ExportFormat

    tmp = Path(sys.argv[1])
    started = time.perf_counter()
    components = make_components(
        f"sqlite:///{tmp / 'ch.db'}", tmp, ReportSigner(Ed25519PrivateKey.generate()), ManualClock()
    )
    built = time.perf_counter() - started
    finding, _ = components.registry.report(REVIEWER, report_input())
    seconds = {}
    for export_format in ExportFormat:
        for attempt in ("first", "second"):
            started = time.perf_counter()
            components.registry.export(REVIEWER, finding.finding_id, export_format)
            seconds[f"{export_format.name} {attempt}"] = time.perf_counter() - started
    print(json.dumps({"build": built, **seconds}))
    """
)


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-c", RUN, tmp],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes to measure")
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.runs)]

    def ms(key: str) -> str:
        values = [run[key] * 1000 for run in runs]
        return f"median {statistics.median(values):8.1f} ms  max {max(values):8.1f} ms"

    print(f"{args.runs} fresh processes; {sys.platform}, Python {sys.version.split()[0]}")
    print(f"build (start-up loads)  {ms('build')}")
    for name in sorted({key.split()[0] for key in runs[0] if key != "build"}):
        print(f"{name:9} first export  {ms(f'{name} first')}   second (baseline) {ms(f'{name} second')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
