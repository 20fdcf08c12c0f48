"""pytest plugin: a skipped test is a failure unless the README allows its reason.

`make test` runs every test; a test that skips because something `make setup` provides is
missing (a tool, a built binary) would hide that it never ran. A skip whose reason starts with one
of `ALLOWED_SKIP_REASONS` (prerequisites the README's "Needs" names, which a machine may lack)
stays a skip; any other skip is reported as a failure with its reason. Loaded by
`preflight_testkit.plugin`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator
from typing import Any, NoReturn

import pytest

BWRAP_MISSING = "bubblewrap (bwrap) is not installed"
ALLOWED_SKIP_REASONS = ("PostgreSQL server binaries not found", BWRAP_MISSING)


def running_in_ci() -> bool:
    """True when the ``CI`` environment variable is set to anything but empty, 0 or false."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test for `reason`; in CI, where `make setup` and .ci/run provide everything, fail."""
    if running_in_ci():
        pytest.fail(f"{reason} (CI is set: not skipping)", pytrace=False)
    pytest.skip(reason)


# Marks a test that needs bubblewrap. CI installs it (.ci/run): there, a missing bwrap fails
# instead of skipping.
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None and not running_in_ci(), reason=BWRAP_MISSING)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail") or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    if not reason.startswith(ALLOWED_SKIP_REASONS):
        report.outcome = "failed"
        report.longrepr = f"skipped for a reason the README does not allow (see 'How it is tested'): {reason}"
