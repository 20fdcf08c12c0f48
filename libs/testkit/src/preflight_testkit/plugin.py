"""The pytest plugin (entry point ``pytest11``: ``preflight``): the shared fixtures (the broker,
PostgreSQL, the test Kubernetes cluster), no silent skips and the lanes. Disable it for one run
with ``-p no:preflight``."""

pytest_plugins = [
    "preflight_testkit.fixtures",
    "preflight_testkit.k8s",
    "preflight_testkit.skips",
    "preflight_testkit.lanes",
]
