"""The clearinghouse's fixtures (preflight_testkit.clearinghouse)."""

import sys
from pathlib import Path

from preflight_testkit.clearinghouse import api, clock, components, loopback, signer, sqlite_components

# Test modules here share helpers by importing one another (test_clearinghouse_grpc's principals,
# test_clearinghouse_export_standards' format checks, ...).
sys.path.insert(0, str(Path(__file__).parent))

__all__ = ["api", "clock", "components", "loopback", "signer", "sqlite_components"]
