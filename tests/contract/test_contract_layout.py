"""Every service is laid out the same way, and its use cases depend on ports, not on machinery.

A service's package holds `domain/` (rules, no I/O), `service_layer/` (use cases), `adapters/`
(the concrete store, topics, gRPC, clients) and `entrypoints/` (server, agents, CLI), plus
`migrations/` when it has a database. A `service_layer` module imports no database, gRPC or Kafka
library and no concrete adapter: it uses the Protocols its service declares in `domain/`, and
`bootstrap.py` (or the entrypoint) hands it the adapters that satisfy them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("benchmark", "clearinghouse", "console", "intake", "notifier")
LAYERS = frozenset({"domain", "service_layer", "adapters", "entrypoints"})
WITH_DATABASE = frozenset({"benchmark", "clearinghouse", "intake", "notifier"})
GRPC_SERVERS = frozenset({"benchmark", "clearinghouse", "intake", "notifier"})
# A service's folders beside its layers: data its code reads, or programs other than the service.
OWN_FOLDERS = {
    "benchmark": {"catalog", "reference_model", "suites", "worker"},
    "clearinghouse": {"policy"},
    "console": {"static", "templates"},
    "notifier": {"routing"},
}
FORBIDDEN_LIBRARIES = frozenset({"sqlalchemy", "grpc", "kafka", "aiokafka"})
CONCRETE_ADAPTER = re.compile(r"^preflight_\w+\.adapters(\.|$)")


def package(service: str) -> Path:
    return ROOT / "services" / service / "src" / f"preflight_{service}"


def imported(module: Path, top: Path) -> list[str]:
    """The full names of every module (and `from` name) `module`, in the package `top`, imports,
    relative ones resolved."""
    within = [top.name, *module.parent.relative_to(top).parts]
    names = []
    for node in ast.walk(ast.parse(module.read_text(), filename=str(module))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*within[: len(within) - node.level + 1], *([base] if base else [])])
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return names


def violations(service: str) -> list[str]:
    """`<module>: <import>` for every forbidden import of the service's use cases."""
    found = {
        f"{module.relative_to(ROOT)}: {name}"
        for module in (package(service) / "service_layer").rglob("*.py")
        for name in imported(module, package(service))
        if name.split(".")[0] in FORBIDDEN_LIBRARIES or CONCRETE_ADAPTER.match(name)
    }
    return sorted(found)


@pytest.mark.parametrize("service", SERVICES)
def test_use_cases_import_no_machinery_and_no_concrete_adapter(service: str) -> None:
    assert violations(service) == [], f"{service}'s use cases import what they should reach through ports"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_layers(service: str) -> None:
    folders = {p.name for p in package(service).iterdir() if p.is_dir() and p.name != "__pycache__"}
    expected = LAYERS | ({"migrations"} if service in WITH_DATABASE else set())
    assert folders - OWN_FOLDERS.get(service, set()) == expected


@pytest.mark.parametrize("service", sorted(GRPC_SERVERS))
def test_grpc_servers_keep_their_servicers_in_adapters_grpc(service: str) -> None:
    assert (package(service) / "adapters" / "grpc.py").is_file()


def test_the_import_check_sees_every_form_of_import(tmp_path: Path) -> None:
    module = tmp_path / "preflight_x" / "service_layer" / "case.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "import grpc.aio\n"
        "from sqlalchemy import Engine\n"
        "from preflight_x import adapters\n"
        "from ..adapters.store import Store\n"
        "from ..domain import ports\n"
    )
    names = imported(module, tmp_path / "preflight_x")
    assert "grpc.aio" in names
    assert "sqlalchemy" in names
    assert "preflight_x.adapters" in names
    assert "preflight_x.adapters.store" in names
    assert "preflight_x.domain.ports" in names
