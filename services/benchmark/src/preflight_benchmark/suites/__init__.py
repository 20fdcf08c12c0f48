"""The offline cyber suites shipped with Preflight, as Inspect AI tasks (data inside the package)."""
