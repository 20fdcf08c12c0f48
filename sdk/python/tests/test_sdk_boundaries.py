"""What the SDK promises about the rest of the tree: code that calls Preflight as a user does goes
through the SDK, never through the generated gRPC stubs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
STUB_IMPORT = re.compile(
    r"^\s*(from\s+preflight\.[\w.]*_pb2_grpc\b|from\s+preflight\.[\w.]+\s+import\s+.*_pb2_grpc\b|import\s+preflight\.[\w.]*_pb2_grpc\b)",
    re.M,
)

# The generated stubs belong to the SDK and to the services (and the server-side library and the
# generated package); elsewhere only where the wire itself is under test or measurement.
ALLOWED = (
    "sdk/",
    "services/",
    "libs/",
    "tests/contract/",  # hostile, malformed requests the SDK's typed methods would never send
    "bench/",  # the services' raw RPC throughput, without the client's own work
)


def test_no_generated_stub_is_imported_outside_the_sdk_and_the_services() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    offenders = [
        path
        for path in tracked.split("\0")
        if path
        and not path.startswith(ALLOWED)
        and (ROOT / path).is_file()
        and STUB_IMPORT.search((ROOT / path).read_text(encoding="utf-8", errors="replace"))
    ]
    assert offenders == [], f"use preflight.sdk instead of the generated stubs in {offenders}"


def test_the_pattern_sees_every_way_of_importing_a_stub() -> None:
    for line in (
        "from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc as ch_grpc",
        "from preflight.intake.v1 import intake_pb2, intake_pb2_grpc",
        "from preflight.notifier.v1.notifier_pb2_grpc import NotifierServiceStub",
        "import preflight.benchmark.v1.benchmark_pb2_grpc",
    ):
        assert STUB_IMPORT.search(line), line
    assert not STUB_IMPORT.search("from grpc_health.v1 import health_pb2_grpc")
    assert not STUB_IMPORT.search("from preflight.clearinghouse.v1 import clearinghouse_pb2 as ch")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_every_rpc_a_user_calls_has_a_method_on_its_blocking_and_asyncio_client() -> None:
    from preflight.benchmark.v1 import benchmark_pb2
    from preflight.clearinghouse.v1 import clearinghouse_pb2
    from preflight.identity.v1 import identity_pb2
    from preflight.intake.v1 import intake_pb2
    from preflight.notifier.v1 import notifier_pb2
    from preflight.sdk import aio, client

    services = {
        (intake_pb2, "IntakeService"): (client.IntakeClient, aio.AsyncIntakeClient),
        (identity_pb2, "IdentityService"): (client.IntakeClient, aio.AsyncIntakeClient),
        (clearinghouse_pb2, "ClearinghouseService"): (
            client.ClearinghouseClient,
            aio.AsyncClearinghouseClient,
        ),
        (notifier_pb2, "NotifierService"): (client.NotifierClient, aio.AsyncNotifierClient),
        (benchmark_pb2, "BenchmarkService"): (client.BenchmarkClient, aio.AsyncBenchmarkClient),
    }
    # Internal calls between services, and names the clients shorten.
    internal = {"ReportJobResult", "IntrospectToken", "IssueJobToken"}
    renamed = {"SubmitModel": "submit", "WithdrawSubmission": "withdraw", "WatchSubmission": "watch"}
    missing = [
        f"{kind.__name__}.{renamed.get(method, _snake(method))}"
        for (module, service), kinds in services.items()
        for method in module.DESCRIPTOR.services_by_name[service].methods_by_name
        if method not in internal
        for kind in kinds
        if not hasattr(kind, renamed.get(method, _snake(method)))
    ]
    assert missing == []
