"""Who an OpenID Connect user is in Preflight: the declared mapping from an issuer's claims to
a principal. Deny by default: a user no rule maps gets no token.

The mapping is a YAML (or JSON) document, `PREFLIGHT_INTAKE_OIDC_FILE`:

```yaml
issuers:
  - issuer: https://login.agency.example          # the provider's issuer URL, exactly
    audiences: [preflight-console]                 # client ids whose ID tokens are accepted
    principals:                                    # the first rule that matches decides
      - {claim: sub, value: "248289761001", principal_id: rita, role: reviewer, organisation: agency}
      - {claim: email, value: ops@hospital.example, role: operator, organisation: st-marys,
         sectors: [healthcare]}
      - {claim: groups, value: preflight-labs-acme, role: lab, organisation: acme}
```

A rule matches on the subject (`sub`), on the `email` (only when the provider says it is
verified, `email_verified: true`) or on one of the `groups`. The principal id is the rule's
`principal_id`, else the token's subject. Only people's roles can be mapped (lab, reviewer,
operator): admin, service and worker tokens are never issued this way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from preflight_common.auth import Principal, Role, principal_violations
from preflight_common.oidc import issuer_url_problem

PEOPLE_ROLES = (Role.LAB, Role.REVIEWER, Role.OPERATOR)
"""The roles an OpenID Connect user may be mapped to."""

CLAIMS = ("sub", "email", "groups")


class MappingError(ValueError):
    """The mapping document is malformed; the text names the entry (`issuers[0].principals[2].role`)."""


@dataclass(frozen=True)
class Rule:
    """One mapping rule: a claim's value and the principal it maps to."""

    claim: str
    value: str
    role: Role
    organisation: str
    principal_id: str = ""
    sectors: frozenset[str] = frozenset()

    def matches(self, claims: Mapping[str, Any]) -> bool:
        """Whether the (verified) ID token's claims match this rule."""
        if self.claim == "email":
            return claims.get("email_verified") is True and claims.get("email") == self.value
        if self.claim == "groups":
            groups = claims.get("groups")
            return isinstance(groups, list) and self.value in groups
        return claims.get("sub") == self.value

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The principal this rule maps the claims to."""
        return Principal(self.principal_id or str(claims["sub"]), self.role, self.organisation, self.sectors)


@dataclass(frozen=True)
class TrustedIssuer:
    """A provider intake accepts ID tokens from, for these audiences, mapped by these rules."""

    issuer: str
    audiences: tuple[str, ...]
    rules: tuple[Rule, ...]

    def principal_for(self, claims: Mapping[str, Any]) -> Principal | None:
        """The principal of the first matching rule, if any rule matches and its principal is one a
        token may be issued to (an id made of the subject may not be)."""
        for rule in self.rules:
            if rule.matches(claims):
                principal = rule.principal(claims)
                if principal_violations(principal.principal_id, principal.organisation, principal.sectors):
                    return None
                return principal
        return None


@dataclass(frozen=True)
class Federation:
    """Every trusted issuer, by issuer URL."""

    issuers: Mapping[str, TrustedIssuer]

    @classmethod
    def parse(cls, text: str) -> Federation:
        """The mapping document; MappingError naming the first malformed entry."""
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError:
            raise MappingError("not YAML or JSON") from None
        issuers = _list(document.get("issuers") if isinstance(document, dict) else None, "issuers")
        found: dict[str, TrustedIssuer] = {}
        for i, entry in enumerate(issuers):
            trusted = _issuer(entry, f"issuers[{i}]")
            if trusted.issuer in found:
                raise MappingError(f"issuers[{i}].issuer: listed twice")
            found[trusted.issuer] = trusted
        return cls(found)


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise MappingError(f"{where}: a non-empty list is required")
    return value


def _text(entry: dict[str, Any], name: str, where: str, *, required: bool = True) -> str:
    value = entry.get(name, "")
    if not isinstance(value, str) or (required and not value):
        raise MappingError(f"{where}.{name}: {'required' if required else 'must be'} text")
    return value


def _issuer(entry: Any, where: str) -> TrustedIssuer:
    if not isinstance(entry, dict):
        raise MappingError(f"{where}: a mapping is required")
    issuer = _text(entry, "issuer", where)
    problem = issuer_url_problem(issuer)
    if problem:
        raise MappingError(f"{where}.issuer: {problem}")
    audiences = _list(entry.get("audiences"), f"{where}.audiences")
    if not all(isinstance(a, str) and a for a in audiences):
        raise MappingError(f"{where}.audiences: client ids are text")
    rules = tuple(
        _rule(rule, f"{where}.principals[{j}]")
        for j, rule in enumerate(_list(entry.get("principals"), f"{where}.principals"))
    )
    return TrustedIssuer(issuer, tuple(audiences), rules)


def _rule(entry: Any, where: str) -> Rule:
    if not isinstance(entry, dict):
        raise MappingError(f"{where}: a mapping is required")
    claim = _text(entry, "claim", where)
    if claim not in CLAIMS:
        raise MappingError(f"{where}.claim: one of {', '.join(CLAIMS)}")
    role_name = _text(entry, "role", where)
    role = next((r for r in PEOPLE_ROLES if r.value == role_name), None)
    if role is None:
        raise MappingError(f"{where}.role: one of {', '.join(r.value for r in PEOPLE_ROLES)}")
    sectors = entry.get("sectors", [])
    if not isinstance(sectors, list) or not all(isinstance(s, str) for s in sectors):
        raise MappingError(f"{where}.sectors: a list of sector names")
    rule = Rule(
        claim=claim,
        value=_text(entry, "value", where),
        role=role,
        organisation=_text(entry, "organisation", where),
        principal_id=_text(entry, "principal_id", where, required=False),
        sectors=frozenset(sectors),
    )
    violations = principal_violations(rule.principal_id or "subject", rule.organisation, rule.sectors)
    if violations:
        name, description = violations[0]
        raise MappingError(f"{where}.{name.removeprefix('principal.')}: {description}")
    return rule
