"""Repository-wide pytest configuration: the shared fixtures (real Kafka broker, PostgreSQL)."""

pytest_plugins = ["preflight_common.testing.fixtures"]
