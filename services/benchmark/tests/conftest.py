"""The benchmark service's fixtures (preflight_testkit.benchmark); `k8s_cluster` comes from the
kit's plugin."""

from preflight_testkit.benchmark import intake, model_key, reference_model, service, slow_reference_model

__all__ = ["intake", "model_key", "reference_model", "service", "slow_reference_model"]
