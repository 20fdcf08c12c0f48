"""The SDK installs and works alone: built as a wheel, installed with `pip --no-deps` into a fresh
virtual environment holding nothing but its declared dependencies (copied, offline, from this
environment's installed distributions), it imports, verifies a signed report, and finds no
server package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from email.parser import Parser
from importlib import metadata
from pathlib import Path
from zipfile import ZipFile

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = (ROOT / "sdk" / "python", ROOT / "libs" / "proto")

pytestmark = pytest.mark.slow

CHECK = """
import hashlib, importlib.util, json
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from preflight.clearinghouse.v1 import clearinghouse_pb2
import preflight.sdk, preflight.sdk.aio, preflight.sdk.cli, preflight.sdk.config
from preflight.sdk import Preflight, ReportVerificationError, verify_report

key = Ed25519PrivateKey.generate()
public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
shown = dict(report_id="r", submission_id="s", version=1, organisation="o", signing_key_id="k",
    tier="T", policy_id="p", policy_version="1")
signed = dict(shown, issued_at="1970-01-01T00:00:00.000000+00:00", unassessed_capabilities=[],
    scores=[], failed_suites=[])
body = json.dumps(signed).encode()
report = clearinghouse_pb2.ReviewReport(body=body, signature=key.sign(body),
    digest=hashlib.sha256(body).hexdigest(), **shown)
verify_report(report, public)
report.tier = "U"
try:
    verify_report(report, public)
except ReportVerificationError:
    pass
else:
    raise SystemExit("a tampered report verified")
Preflight("127.0.0.1:1").close()
servers = [m for m in ("preflight_common", "preflight_intake", "preflight_clearinghouse",
    "preflight_notifier", "preflight_benchmark", "sqlalchemy", "aiokafka") if importlib.util.find_spec(m)]
print(json.dumps(servers))
"""


def _requirements(wheel: Path) -> list[Requirement]:
    with ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        fields = Parser().parsestr(archive.read(name).decode())
    return [Requirement(text) for text in fields.get_all("Requires-Dist") or ()]


def _closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """The installed distributions the requirements need, transitively (extras left out)."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        key = requirement.name.lower().replace("_", "-")
        if key in found or key.startswith("preflight-"):
            continue
        found[key] = metadata.distribution(requirement.name)
        pending += [Requirement(text) for text in found[key].requires or ()]
    return found


def _copy(distribution: metadata.Distribution, site_packages: Path) -> None:
    for file in distribution.files or ():
        if file.parts[0] == "..":  # console scripts and the like, outside site-packages
            continue
        target = site_packages / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(str(distribution.locate_file(file))), target)


def test_the_sdk_installs_alone_and_needs_no_server_package(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(wheels), *map(str, PACKAGES)], check=True)
    built = sorted(wheels.glob("*.whl"))
    assert [w.name.split("-")[0] for w in built] == ["preflight_proto", "preflight_sdk"]
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(fresh)], check=True)
    python = fresh / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert purelib != sysconfig.get_paths()["purelib"]
    for distribution in _closure([r for w in built for r in _requirements(w)]).values():
        _copy(distribution, Path(purelib))
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", *map(str, built)], check=True
    )
    # Every declared dependency, and theirs, is there: nothing is missing for the SDK.
    subprocess.run([str(python), "-m", "pip", "check"], check=True, capture_output=True)
    checked = subprocess.run([str(python), "-I", "-c", CHECK], capture_output=True, text=True, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "[]"
