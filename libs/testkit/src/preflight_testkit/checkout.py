"""The checkout the tests run in: where `make setup` installs the tools tests run, and the
repository's scripts (deploy/local/stack.py, deploy/k8s/cluster.py, ...) loaded as modules."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

from preflight_common.localkafka import find_repo_root


@cache
def repository() -> Path:
    """The checkout holding this package (`preflight_common.localkafka.find_repo_root` from here)."""
    return find_repo_root(Path(__file__).resolve().parent)


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
