"""The end-to-end tests' fixture: the embedded stack (preflight_testkit.stack)."""

from preflight_testkit.stack import stack

__all__ = ["stack"]
