#!/usr/bin/env python3
"""Fetch the published CustomResourceDefinitions of the third-party APIs the chart renders.

Kueue's and the Gateway API's CRDs are taken from their Go modules at pinned versions, through
the Go module proxy (`go mod download`), and each module's content hash is checked against the
one pinned here before any file is copied. The CRDs land in `<out>/` (by default `.cache/crds`)
under their upstream names; `check_chart.py` validates rendered objects against them, and the
cluster tests install them into the local API server.

    fetch_crds.py [--out .cache/crds]

Exit status 0 once every listed CRD is in place.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Module:
    path: str
    version: str
    sum: str  # the module's go.sum hash ("h1:..."), checked before anything is copied
    folder: str
    files: tuple[str, ...]


MODULES = (
    Module(
        "sigs.k8s.io/kueue",
        "v0.17.0",
        "h1:7hzb38M4eKGzYW+CFv2s1L+swzzacUCHOCXxZmAV90I=",
        "config/components/crd/bases",
        (
            "kueue.x-k8s.io_resourceflavors.yaml",
            "kueue.x-k8s.io_clusterqueues.yaml",
            "kueue.x-k8s.io_localqueues.yaml",
        ),
    ),
    Module(
        "sigs.k8s.io/gateway-api",
        "v1.6.3",
        "h1:lKpJa5bGlraC/QeACvCpsHLdmO6y0iKfzVl6gzaFEYc=",
        "config/crd/standard",
        ("gateway.networking.k8s.io_grpcroutes.yaml",),
    ),
)


def download(module: Module) -> Path:
    """The module's extracted folder in the Go module cache, after checking its hash."""
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    with tempfile.TemporaryDirectory() as outside_any_module:
        result = subprocess.run(
            ["go", "mod", "download", "-json", f"{module.path}@{module.version}"],
            cwd=outside_any_module,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Error" in info:
        raise SystemExit(f"fetch_crds: {module.path}@{module.version}: {info.get('Error') or result.stderr}")
    if info["Sum"] != module.sum:
        raise SystemExit(
            f"fetch_crds: {module.path}@{module.version} has hash {info['Sum']}, expected {module.sum}"
        )
    return Path(info["Dir"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "crds")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for module in MODULES:
        folder = download(module) / module.folder
        for name in module.files:
            target = args.out / name
            shutil.copyfile(folder / name, target)
            target.chmod(0o644)  # the module cache is read-only
            print(f"{target} <- {module.path}@{module.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
