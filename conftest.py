"""Repository-wide pytest configuration: the shared fixtures (real Kafka broker, PostgreSQL), and
no silent skips (a skip is a failure unless the README allows its reason), and the fast lane
(`--fast`)."""

pytest_plugins = [
    "preflight_common.testing.fixtures",
    "preflight_common.testing.skips",
    "preflight_common.testing.lanes",
]
