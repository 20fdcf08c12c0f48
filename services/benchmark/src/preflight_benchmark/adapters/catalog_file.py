"""Loads the suite catalog: the YAML shipped in the package, or PREFLIGHT_BENCHMARK_CATALOG_FILE."""

from __future__ import annotations

import os
from collections.abc import Collection
from importlib import resources
from pathlib import Path

import yaml

from preflight_benchmark.domain.catalog import Catalog, CatalogError, parse_catalog

CATALOG_ENV = "PREFLIGHT_BENCHMARK_CATALOG_FILE"


def load_catalog(path: Path | None = None, accelerators: Collection[str] | None = None) -> Catalog:
    """The catalog at `path`, else at $PREFLIGHT_BENCHMARK_CATALOG_FILE, else the shipped one;
    `accelerators`: the deployment's accelerator classes, as `parse_catalog` checks them."""
    override = path or (Path(os.environ[CATALOG_ENV]) if os.environ.get(CATALOG_ENV) else None)
    if override is not None:
        text, where = override.read_text(encoding="utf-8"), str(override)
    else:
        shipped = resources.files("preflight_benchmark.catalog").joinpath("suites.yaml")
        text, where = shipped.read_text(encoding="utf-8"), "preflight_benchmark/catalog/suites.yaml"
    try:
        return parse_catalog(yaml.safe_load(text), accelerators)
    except (CatalogError, yaml.YAMLError) as exc:
        raise CatalogError(f"{where}: {exc}") from exc
