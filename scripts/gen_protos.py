"""Generate the Python code and typed stubs for every proto under protos/.

Usage: python scripts/gen_protos.py [--check]

Writes into libs/proto/src (the `preflight-proto` package). With --check,
generates into a temporary folder and exits 1 if the committed code differs
(stale), naming the files.
"""

from __future__ import annotations

import filecmp
import os
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "libs" / "proto" / "src"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(out: Path) -> None:
    """Run protoc (from grpcio-tools) with the grpc and mypy-protobuf plugins into `out`."""
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    # The protoc plugins (protoc-gen-mypy, protoc-gen-mypy_grpc) live beside this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generated_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.name.endswith(GENERATED_SUFFIXES)}


def main() -> int:
    check = "--check" in sys.argv[1:]
    if not check:
        for stale in generated_files(OUT):
            (OUT / stale).unlink()
        generate(OUT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        want, have = generated_files(fresh), generated_files(OUT)
        bad = sorted(str(p) for p in want ^ have)
        bad += sorted(str(p) for p in want & have if not filecmp.cmp(fresh / p, OUT / p, shallow=False))
        if bad:
            print("generated code is stale; run `make protos`:", *bad, sep="\n  ")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
