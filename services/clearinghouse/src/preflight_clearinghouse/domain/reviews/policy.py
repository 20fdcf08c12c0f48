"""The versioned risk policy: per-capability score thresholds → risk tiers.

A policy lists its tiers from lowest to highest, a default (lowest) tier, and
for each capability it rates the metric to read (e.g. `accuracy`, `recall`)
and ascending thresholds. A capability's tier is the tier of the highest
threshold its basis value reaches (`score >= at`); the report's tier is the
highest capability tier, or the default tier when no threshold is reached.
The basis is the point estimate (`score`) or, for a precautionary policy, the
upper end of the 95% interval (`ci_high`). Capabilities the policy does not
rate are reported but do not move the tier; rated capabilities without any
completed suite are listed as unassessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Basis = Literal["score", "ci_high"]
DEFAULT_METRIC = "accuracy"


class PolicyError(ValueError):
    """The policy document is malformed; the message names the offending key."""


@dataclass(frozen=True)
class Threshold:
    """`tier` applies once the basis value is at least `at`."""

    at: float
    tier: str


@dataclass(frozen=True)
class CapabilityRule:
    """How one capability maps to tiers."""

    capability: str
    metric: str
    thresholds: tuple[Threshold, ...]


@dataclass(frozen=True)
class RiskPolicy:
    """A parsed, checked risk policy."""

    policy_id: str
    version: str
    tiers: tuple[str, ...]
    default_tier: str
    basis: Basis
    rules: Mapping[str, CapabilityRule]

    def metric_for(self, capability: str) -> str:
        """The metric read for `capability` (`accuracy` for capabilities the policy does not rate)."""
        rule = self.rules.get(capability)
        return rule.metric if rule else DEFAULT_METRIC

    def capability_tier(self, capability: str, score: float, ci_high: float) -> str:
        """The tier one capability's result implies."""
        rule = self.rules.get(capability)
        if rule is None:
            return self.default_tier
        value = score if self.basis == "score" else ci_high
        tier = self.default_tier
        for threshold in rule.thresholds:
            if value >= threshold.at:
                tier = threshold.tier
        return tier

    def highest(self, tiers: list[str]) -> str:
        """The highest of `tiers` (the default tier for none)."""
        return max(tiers, key=self.tiers.index, default=self.default_tier)

    @classmethod
    def from_mapping(cls, data: Any) -> RiskPolicy:
        """Build a policy from a parsed YAML document; raises PolicyError naming the bad key."""
        if not isinstance(data, Mapping):
            raise PolicyError("the policy must be a mapping")
        policy_id = _text(data, "policy_id")
        version = _text(data, "version")
        raw_tiers = data.get("tiers")
        if not isinstance(raw_tiers, list) or not raw_tiers:
            raise PolicyError("tiers: a non-empty list of tier ids, lowest first")
        tiers = tuple(_tier_id(t, i) for i, t in enumerate(raw_tiers))
        if len(set(tiers)) != len(tiers):
            raise PolicyError("tiers: ids must be unique")
        basis = data.get("basis", "score")
        if basis not in ("score", "ci_high"):
            raise PolicyError("basis: must be score or ci_high")
        raw_rules = data.get("capabilities")
        if not isinstance(raw_rules, Mapping) or not raw_rules:
            raise PolicyError("capabilities: a non-empty mapping of capability → rule")
        rules = {str(name): _rule(str(name), rule, tiers) for name, rule in raw_rules.items()}
        return cls(policy_id, version, tiers, tiers[0], basis, rules)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str | int | float) or not str(value).strip():
        raise PolicyError(f"{key}: required")
    return str(value).strip()


def _tier_id(entry: Any, index: int) -> str:
    tier = entry.get("id") if isinstance(entry, Mapping) else entry
    if not isinstance(tier, str) or not tier.strip():
        raise PolicyError(f"tiers[{index}]: a tier id (or a mapping with `id`)")
    return tier.strip()


def _rule(name: str, rule: Any, tiers: tuple[str, ...]) -> CapabilityRule:
    if not isinstance(rule, Mapping):
        raise PolicyError(f"capabilities.{name}: must be a mapping")
    metric = rule.get("metric", DEFAULT_METRIC)
    if not isinstance(metric, str) or not metric:
        raise PolicyError(f"capabilities.{name}.metric: a metric name")
    raw = rule.get("thresholds")
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"capabilities.{name}.thresholds: a non-empty list of {{at, tier}}")
    thresholds: list[Threshold] = []
    for i, item in enumerate(raw):
        where = f"capabilities.{name}.thresholds[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("at"), int | float):
            raise PolicyError(f"{where}: needs a numeric `at`")
        if item.get("tier") not in tiers:
            raise PolicyError(f"{where}.tier: must be one of {', '.join(tiers)}")
        thresholds.append(Threshold(float(item["at"]), str(item["tier"])))
    ats = [t.at for t in thresholds]
    if ats != sorted(ats) or len(set(ats)) != len(ats):
        raise PolicyError(f"capabilities.{name}.thresholds: `at` values must strictly increase")
    ranks = [tiers.index(t.tier) for t in thresholds]
    if ranks != sorted(ranks):
        raise PolicyError(f"capabilities.{name}.thresholds: higher thresholds must not lower the tier")
    return CapabilityRule(name, metric, tuple(thresholds))
