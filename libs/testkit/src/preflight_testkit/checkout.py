"""The checkout the tests run in: where `make setup` installs the tools tests run, and the
repository's scripts (deploy/local/stack.py, deploy/k8s/cluster.py, ...) loaded as modules."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType


@cache
def repository() -> Path:
    """The checkout holding this package (its `Makefile` and `libs/`)."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "Makefile").is_file() and (folder / "libs").is_dir():
            return folder
    raise RuntimeError("the repository holding preflight_testkit was not found")


def load_script(name: str, path: str) -> ModuleType:
    """The script at `path` (relative to the checkout) as module `name`, executed once per process:
    a later call with the same name returns the module already loaded."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, repository() / path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
