"""Inspect AI registry entry point: makes the shipped suites resolvable as ``preflight_benchmark/<task>``
and registers the ``bwrap`` sandbox environment."""

from preflight_benchmark.suites.bwrap import BubblewrapSandboxEnvironment
from preflight_benchmark.suites.discovery import discovery
from preflight_benchmark.suites.exploit import exploit
from preflight_benchmark.suites.knowledge import knowledge
from preflight_benchmark.suites.mcq import cyber_mcq
from preflight_benchmark.suites.vuln_detect import vuln_detect

__all__ = ["BubblewrapSandboxEnvironment", "cyber_mcq", "discovery", "exploit", "knowledge", "vuln_detect"]
