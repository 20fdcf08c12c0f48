"""Preflight's benchmark service: plans suites, dispatches workers, evaluates with Inspect AI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("preflight-benchmark")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
