"""Test infrastructure: a local Kafka broker and PostgreSQL server, and the pytest fixtures.

``preflight_common.testing.fixtures`` is a pytest plugin (the repository's root ``conftest.py``
loads it); ``preflight_common.testing.postgres`` has :class:`LocalPostgres`. The broker itself is
``preflight_common.localkafka.LocalKafka``.
"""
