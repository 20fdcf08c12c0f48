"""The deployment tests' fixtures (the chart, the images, the embedded stack): preflight_testkit.deploy."""

from preflight_testkit.deploy import (
    build_images,
    chart,
    check_chart,
    helm,
    helm_unittest,
    local_stack,
    repo,
    require,
    values_table,
)

__all__ = [
    "build_images",
    "chart",
    "check_chart",
    "helm",
    "helm_unittest",
    "local_stack",
    "repo",
    "require",
    "values_table",
]
