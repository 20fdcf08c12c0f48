"""The clearinghouse's fixtures (preflight_testkit.clearinghouse)."""

from preflight_testkit.clearinghouse import api, clock, components, loopback, signer, sqlite_components

__all__ = ["api", "clock", "components", "loopback", "signer", "sqlite_components"]
