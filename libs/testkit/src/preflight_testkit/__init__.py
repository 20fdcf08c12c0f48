"""Preflight's test kit: every fixture and helper the tests share, nothing mocked.

``preflight_testkit.plugin`` is a pytest plugin registered through the ``pytest11`` entry point:
any pytest run in an environment with the kit installed has the shared fixtures (``fixtures``:
the Kafka broker, PostgreSQL, ``db_url``), the skip rule (``skips``) and the lanes (``lanes``:
markers from the fixtures a test uses, ``--fast``). The rest is imported where used: helpers
(``clients``, ``rpc``, ``postgres``, ``tls``, ``oidc``, ``axe``, ``openpgp``, ...) and each
service's fixtures (``preflight_testkit.<service>``, taken in by that service's ``conftest.py``).
"""
