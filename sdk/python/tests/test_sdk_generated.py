"""The blocking clients (client.py) are generated from the asyncio ones (aio.py): never edited apart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
GENERATOR = ROOT / "scripts" / "gen_sdk_client.py"
CLIENT = ROOT / "sdk" / "python" / "src" / "preflight" / "sdk" / "client.py"


def test_the_blocking_clients_are_what_the_asyncio_clients_generate() -> None:
    check = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_generated_module_says_where_it_comes_from() -> None:
    assert CLIENT.read_text().startswith("# Generated from aio.py by scripts/gen_sdk_client.py (unasync)")
