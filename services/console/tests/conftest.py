"""The console's fixtures (preflight_testkit.console)."""

from preflight_testkit.console import offline_settings, signed_in

__all__ = ["offline_settings", "signed_in"]
