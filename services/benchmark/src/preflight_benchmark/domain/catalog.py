"""The versioned suite catalog: which Inspect tasks exist, what they measure and what they need."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

ACCESS_KINDS = frozenset({"endpoint", "weights"})
SANDBOXES = frozenset({"none", "bwrap"})
SUITE_ID = re.compile(r"^[a-z][a-z0-9]*(?:[.-][a-z0-9]+)*$")
QUANTITY = re.compile(r"^\d+(?:\.\d+)?(?:m|k|Ki|Mi|Gi|Ti|M|G|T)?$")


class CatalogError(ValueError):
    """The catalog is malformed; the message names the offending field."""


@dataclass(frozen=True)
class Resources:
    """Compute a suite needs: GPUs and Kubernetes quantities for CPU and memory."""

    gpu: int = 0
    cpu: str = "1"
    memory: str = "2Gi"


@dataclass(frozen=True)
class Suite:
    """One suite version: an Inspect task reference and how to run it."""

    id: str
    version: str
    task: str
    capability: str
    timeout: timedelta
    access_kinds: frozenset[str]
    resources: Resources = Resources()
    task_args: Mapping[str, Any] = field(default_factory=dict)
    sample_limit: int = 0
    sandbox: str = "none"
    description: str = ""

    def supports(self, access_kind: str) -> bool:
        return access_kind in self.access_kinds


@dataclass(frozen=True)
class Catalog:
    """A catalog version and its suites (suite ids are unique within a catalog)."""

    version: str
    suites: tuple[Suite, ...]

    def for_access(self, access_kind: str) -> tuple[Suite, ...]:
        """The suites a model reachable through `access_kind` gets, in catalog order."""
        return tuple(s for s in self.suites if s.supports(access_kind))


def _require(data: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise CatalogError(f"{where}.{key}: required")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise CatalogError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}")
    return value


def _resources(data: Any, where: str) -> Resources:
    if data is None:
        return Resources()
    if not isinstance(data, Mapping):
        raise CatalogError(f"{where}: expected a mapping")
    gpu = data.get("gpu", 0)
    if not isinstance(gpu, int) or isinstance(gpu, bool) or gpu < 0:
        raise CatalogError(f"{where}.gpu: expected a non-negative integer")
    cpu, memory = str(data.get("cpu", "1")), str(data.get("memory", "2Gi"))
    for name, value in (("cpu", cpu), ("memory", memory)):
        if not QUANTITY.match(value):
            raise CatalogError(f"{where}.{name}: {value!r} is not a Kubernetes quantity")
    return Resources(gpu=gpu, cpu=cpu, memory=memory)


def _suite(data: Any, where: str) -> Suite:
    if not isinstance(data, Mapping):
        raise CatalogError(f"{where}: expected a mapping")
    suite_id = _require(data, "id", where, str)
    if not SUITE_ID.match(suite_id):
        raise CatalogError(f"{where}.id: {suite_id!r} is not a suite id (e.g. cyber.vuln-detect)")
    version = str(_require(data, "version", where, (str, int, float)))
    timeout = _require(data, "timeout_seconds", where, int)
    if timeout <= 0:
        raise CatalogError(f"{where}.timeout_seconds: must be positive")
    kinds = _require(data, "access_kinds", where, list)
    if not kinds or not set(kinds) <= ACCESS_KINDS:
        raise CatalogError(f"{where}.access_kinds: a non-empty subset of {sorted(ACCESS_KINDS)}")
    sandbox = data.get("sandbox", "none")
    if sandbox not in SANDBOXES:
        raise CatalogError(f"{where}.sandbox: one of {sorted(SANDBOXES)}")
    task_args = data.get("task_args") or {}
    if not isinstance(task_args, Mapping):
        raise CatalogError(f"{where}.task_args: expected a mapping")
    limit = data.get("sample_limit", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise CatalogError(f"{where}.sample_limit: expected a non-negative integer")
    return Suite(
        id=suite_id,
        version=version,
        task=_require(data, "task", where, str),
        capability=_require(data, "capability", where, str),
        timeout=timedelta(seconds=timeout),
        access_kinds=frozenset(kinds),
        resources=_resources(data.get("resources"), f"{where}.resources"),
        task_args=dict(task_args),
        sample_limit=limit,
        sandbox=sandbox,
        description=str(data.get("description", "")),
    )


def parse_catalog(data: Any) -> Catalog:
    """Validate a catalog document (as loaded from YAML); raises CatalogError naming the field."""
    if not isinstance(data, Mapping):
        raise CatalogError("catalog: expected a mapping")
    version = str(_require(data, "catalog_version", "catalog", (str, int, float)))
    raw = _require(data, "suites", "catalog", list)
    suites = tuple(_suite(item, f"suites[{i}]") for i, item in enumerate(raw))
    seen: set[str] = set()
    for i, suite in enumerate(suites):
        if suite.id in seen:
            raise CatalogError(f"suites[{i}].id: duplicate suite id {suite.id!r}")
        seen.add(suite.id)
    # Every submission gets at least one job: a plan of none would never end, and its review with it.
    for kind in sorted(ACCESS_KINDS):
        if not any(suite.supports(kind) for suite in suites):
            raise CatalogError(f"catalog.suites: no suite supports {kind} access")
    return Catalog(version=version, suites=suites)
