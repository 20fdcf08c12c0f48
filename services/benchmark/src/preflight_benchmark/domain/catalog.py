"""The versioned suite catalog: which Inspect tasks exist, what they measure and what they need."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

ACCESS_KINDS = frozenset({"endpoint", "weights"})
SANDBOXES = frozenset({"none", "bwrap"})
SUITE_ID = re.compile(r"^[a-z][a-z0-9]*(?:[.-][a-z0-9]+)*$")
QUANTITY = re.compile(r"^\d+(?:\.\d+)?(?:m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ARGUMENT = re.compile(r"^[a-z_][a-z0-9_]*$")
# An accelerator class: a DNS label, as it names a node pool (e.g. nvidia-a100-80gb).
ACCELERATOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class CatalogError(ValueError):
    """The catalog is malformed; the message names the offending field."""


@dataclass(frozen=True)
class Resources:
    """Compute a suite needs: GPUs and Kubernetes quantities for CPU and memory. `accelerator`:
    the class of those GPUs (the deployment maps it to a resource name and the nodes that have
    them); empty: the deployment's generic GPUs."""

    gpu: int = 0
    cpu: str = "1"
    memory: str = "2Gi"
    accelerator: str = ""


@dataclass(frozen=True)
class Package:
    """The distribution that provides a suite's task, pinned to one version."""

    name: str
    version: str


@dataclass(frozen=True)
class DataSource:
    """A file a suite's task reads: where it was published (`url`, provenance only: workers never
    fetch it), its SHA-256 digest, and the task argument that receives the local path of the copy
    a worker takes from its data mirror."""

    arg: str
    url: str
    sha256: str


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
    package: Package | None = None
    data: tuple[DataSource, ...] = ()

    def supports(self, access_kind: str) -> bool:
        return access_kind in self.access_kinds


@dataclass(frozen=True)
class Catalog:
    """A catalog version and its suites (suite ids are unique within a catalog); `data_mirror`:
    where workers take the suites' data files from (a folder or an fsspec URL), if any reads one."""

    version: str
    suites: tuple[Suite, ...]
    data_mirror: str = ""

    def suite(self, suite_id: str, version: str) -> Suite | None:
        """The suite with this id and version, if the catalog has it."""
        return next((s for s in self.suites if s.id == suite_id and s.version == version), None)

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


def _accelerator(data: Mapping[str, Any], where: str, resources: Resources) -> Resources:
    """`resources` on the suite's accelerator class, if it names one (only with GPUs requested)."""
    if "accelerator" not in data:
        return resources
    name = data["accelerator"]
    if not isinstance(name, str) or not ACCELERATOR.fullmatch(name):
        raise CatalogError(f"{where}.accelerator: expected an accelerator class name (e.g. nvidia-a100-80gb)")
    if resources.gpu < 1:
        raise CatalogError(f"{where}.accelerator: {name!r} needs GPUs, and resources.gpu requests none")
    return replace(resources, accelerator=name)


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
        if not QUANTITY.fullmatch(value):
            raise CatalogError(f"{where}.{name}: {value!r} is not a Kubernetes quantity")
    return Resources(gpu=gpu, cpu=cpu, memory=memory)


def _package(data: Any, where: str) -> Package | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise CatalogError(f"{where}: expected a mapping")
    name = _require(data, "name", where, str)
    if not PACKAGE.fullmatch(name):
        raise CatalogError(f"{where}.name: {name!r} is not a package name")
    version = str(_require(data, "version", where, (str, int, float)))
    if not version:
        raise CatalogError(f"{where}.version: required")
    return Package(name=name, version=version)


def _data_sources(data: Any, where: str, task_args: Mapping[str, Any]) -> tuple[DataSource, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise CatalogError(f"{where}: expected a list")
    sources: list[DataSource] = []
    for i, item in enumerate(data):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise CatalogError(f"{at}: expected a mapping")
        arg = _require(item, "arg", at, str)
        if not ARGUMENT.fullmatch(arg):
            raise CatalogError(f"{at}.arg: {arg!r} is not a task argument name")
        if arg in task_args or any(s.arg == arg for s in sources):
            raise CatalogError(f"{at}.arg: {arg!r} is already given")
        url = _require(item, "url", at, str)
        if not url.startswith("https://"):
            raise CatalogError(f"{at}.url: expected an https:// URL")
        sha256 = _require(item, "sha256", at, str)
        if not SHA256.fullmatch(sha256):
            raise CatalogError(f"{at}.sha256: expected 64 lowercase hex digits")
        sources.append(DataSource(arg=arg, url=url, sha256=sha256))
    return tuple(sources)


def _suite(data: Any, where: str) -> Suite:
    if not isinstance(data, Mapping):
        raise CatalogError(f"{where}: expected a mapping")
    suite_id = _require(data, "id", where, str)
    if not SUITE_ID.fullmatch(suite_id):
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
        resources=_accelerator(data, where, _resources(data.get("resources"), f"{where}.resources")),
        task_args=dict(task_args),
        sample_limit=limit,
        sandbox=sandbox,
        description=str(data.get("description", "")),
        package=_package(data.get("package"), f"{where}.package"),
        data=_data_sources(data.get("data"), f"{where}.data", task_args),
    )


def parse_catalog(data: Any, accelerators: Collection[str] | None = None) -> Catalog:
    """Validate a catalog document (as loaded from YAML); raises CatalogError naming the field.

    `accelerators`: the accelerator classes the deployment maps to nodes; a suite naming another
    is refused. None: not checked (an executor with no GPUs, which ignores the classes)."""
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
    mirror = data.get("data_mirror", "")
    if not isinstance(mirror, str):
        raise CatalogError("catalog.data_mirror: expected a folder or an fsspec URL")
    for i, suite in enumerate(suites):
        if suite.data and not mirror:
            raise CatalogError(f"suites[{i}].data: the catalog names no data_mirror to take it from")
        name = suite.resources.accelerator
        if accelerators is not None and name and name not in accelerators:
            known = ", ".join(sorted(accelerators)) or "none"
            raise CatalogError(
                f"suites[{i}].accelerator: {name!r} is not an accelerator class of this deployment "
                f"(known: {known})"
            )
    return Catalog(version=version, suites=suites, data_mirror=mirror)
