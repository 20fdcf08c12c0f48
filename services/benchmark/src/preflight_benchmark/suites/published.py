"""Suites whose task comes from a published package, and the data files such tasks read.

`check_suite` validates a catalog entry without running it: its pinned package is installed at
that version, its task resolves through Inspect's registry, and its arguments (the catalog's
`task_args` and, for each declared data source, a local path) bind to the task's signature with
the types it declares. `fetch_data` copies a declared data file from the configured mirror (a
folder or an fsspec URL such as ``s3://bucket/prefix``, where files are stored under their
SHA-256 digest) into a local folder and checks the digest; the source's published URL is never
contacted, so a worker needs no access to a hub at run time.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
import typing
from importlib import metadata
from pathlib import Path
from typing import Any

import fsspec
from inspect_ai._util.registry import registry_lookup
from pydantic import TypeAdapter, ValidationError

from preflight_benchmark.domain.catalog import CatalogError, DataSource, Suite

CHUNK = 1024 * 1024


class DataFetchError(RuntimeError):
    """A data file could not be taken from the mirror, or its digest did not match."""


def check_suite(suite: Suite) -> None:
    """Raise CatalogError (naming the suite's field) unless `suite` could run as declared."""
    where = f"suite {suite.id}"
    if suite.package is not None:
        try:
            installed = metadata.version(suite.package.name)
        except metadata.PackageNotFoundError:
            raise CatalogError(
                f"{where}.package: {suite.package.name}=={suite.package.version} is not installed"
            ) from None
        if installed != suite.package.version:
            raise CatalogError(
                f"{where}.package: {suite.package.name} {installed} is installed, "
                f"the catalog pins {suite.package.version}"
            )
    task = registry_lookup("task", suite.task)
    if not callable(task):
        raise CatalogError(f"{where}.task: {suite.task!r} is not a registered Inspect task")
    args: dict[str, Any] = {**suite.task_args, **{source.arg: "/data/file" for source in suite.data}}
    signature = inspect.signature(task)
    try:
        bound = signature.bind(**args)
    except TypeError as exc:
        raise CatalogError(f"{where}.task_args: {exc}") from None
    hints = typing.get_type_hints(inspect.unwrap(task))
    for name, value in bound.arguments.items():
        if name in hints:
            try:
                TypeAdapter(hints[name]).validate_python(value, strict=True)
            except ValidationError:
                raise CatalogError(f"{where}.task_args.{name}: expected {hints[name]}") from None


def fetch_data(source: DataSource, mirror: str, folder: Path) -> Path:
    """Copy `source` from `mirror` (``<mirror>/<sha256>``) to ``folder/<sha256>``; returns its path.

    The copy is written beside its final name and moved there only once its digest matched: a
    file at the returned path has the declared digest. Raises DataFetchError otherwise.
    """
    target = folder / source.sha256
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    location = f"{mirror.rstrip('/')}/{source.sha256}"
    digest = hashlib.sha256()
    handle, partial = tempfile.mkstemp(dir=folder, prefix=".fetch-")
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                with fsspec.open(location, "rb") as remote:
                    while chunk := remote.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            except (OSError, ImportError, ValueError) as exc:
                raise DataFetchError(f"data {source.arg} ({source.url}): mirror {location}: {exc}") from None
        if digest.hexdigest() != source.sha256:
            raise DataFetchError(
                f"data {source.arg} ({source.url}): mirror {location} has digest {digest.hexdigest()}, "
                f"the catalog declares {source.sha256}"
            )
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target
