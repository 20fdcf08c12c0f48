"""Generate the SDK's blocking clients (preflight.sdk.client) from its asyncio clients (preflight.sdk.aio).

Usage: python scripts/gen_sdk_client.py [--check]

aio.py is the one hand-written source of the clients; unasync turns it into client.py (`async def`
→ `def`, `await`/`async for` → plain calls and loops, `AsyncX` → `X`, asyncio.sleep → time.sleep,
the asyncio channel → the blocking one), then ruff sorts its imports and formats it. With --check,
nothing is written: exits 1 if the committed client.py is not what aio.py generates (stale, or
edited by hand).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync

ROOT = Path(__file__).resolve().parent.parent
SDK = ROOT / "sdk" / "python" / "src" / "preflight" / "sdk"
SOURCE = SDK / "aio.py"
TARGET = SDK / "client.py"

# Beyond `AsyncX` → `X` (every such name aio.py uses) and unasync's own (AsyncIterator → Iterator, …).
REPLACEMENTS = {
    "asyncio": "time",  # its one use is asyncio.sleep
    "AioChannel": "Channel",
    "open_aio_channel": "open_channel",
    "stream_alerts": "subscribe_alerts",  # aio.subscribe_alerts is alerts.stream_alerts
}

HEADER = '''\
# Generated from aio.py by scripts/gen_sdk_client.py (unasync) — do not edit: edit aio.py, then run
# `make sdk-client`; sdk/python/tests/test_sdk_generated.py fails while this file is not what aio.py
# generates. Generated rather than wrapping the asyncio client on an event loop thread of its own: a
# blocking client takes any grpc.Channel (an instrumented or an application's own), is called from
# many threads at once and streams with no event loop, as grpc's blocking API does.
"""The blocking Preflight clients: one per service (`IntakeClient`, `ClearinghouseClient`,
`NotifierClient`, `BenchmarkClient`) over a channel they share, and `Client`, the intake client
with a channel of its own. `preflight.sdk.Preflight` builds the four for a deployment.

    with Client("preflight.example.gov:443", token=token, tls=True) as client:
        submission = client.submit(request).submission
        for change in client.watch(submission.submission_id):
            print(change.status)

Every method has a default deadline (`timeout`, 10 s), is retried by gRPC on
UNAVAILABLE when repeating it cannot change anything twice, and raises a
`preflight.sdk.errors.PreflightError` subclass on failure. Each RPC's request
and result are described once, in `preflight.sdk._calls`, for these clients and
their asyncio twins (`preflight.sdk.aio`), from which they are generated.
`subscribe_alerts` is `preflight.sdk.alerts.subscribe_alerts`.
"""
'''


def generate() -> str:
    """client.py as aio.py generates it."""
    source = SOURCE.read_text()
    replacements = {name: name.removeprefix("Async") for name in re.findall(r"\bAsync[A-Z]\w*", source)}
    with tempfile.TemporaryDirectory() as tmp:
        asynchronous, synchronous = Path(tmp, "async"), Path(tmp, "sync")
        asynchronous.mkdir()
        (asynchronous / SOURCE.name).write_text(source)
        rule = unasync.Rule(f"{asynchronous}/", f"{synchronous}/", replacements | REPLACEMENTS)
        unasync.unasync_files([str(asynchronous / SOURCE.name)], [rule])
        code = (synchronous / SOURCE.name).read_text()
    docstring = ast.parse(code).body[0]
    code = HEADER + "".join(code.splitlines(keepends=True)[docstring.end_lineno :])
    for command in (["check", "--fix", "--quiet", "--exit-zero"], ["format", "--quiet"]):
        code = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--stdin-filename", str(TARGET), "-"],
            input=code,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    return code


def main() -> int:
    code = generate()
    if "--check" not in sys.argv[1:]:
        TARGET.write_text(code)
        return 0
    if TARGET.read_text() != code:
        print(f"{TARGET.relative_to(ROOT)} is not what {SOURCE.name} generates; run `make sdk-client`")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
