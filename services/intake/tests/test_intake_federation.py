"""The OpenID Connect mapping: deny by default, rules matched in order, every malformed entry
named where it is (the process then refuses to start, naming PREFLIGHT_INTAKE_OIDC_FILE)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from preflight_common.auth import Principal, Role
from preflight_common.config import ConfigError
from preflight_intake.config import IntakeSettings
from preflight_intake.domain.federation import Federation, MappingError

ISSUER = "https://login.agency.example"
DOCUMENT = f"""
issuers:
  - issuer: {ISSUER}
    audiences: [preflight-console]
    principals:
      - {{claim: sub, value: "248289761001", principal_id: rita, role: reviewer, organisation: agency}}
      - {{claim: email, value: ops@hospital.example, role: operator, organisation: st-marys,
         sectors: [healthcare]}}
      - {{claim: groups, value: preflight-labs-acme, role: lab, organisation: acme}}
"""


def principal(claims: dict[str, Any]) -> Principal | None:
    return Federation.parse(DOCUMENT).issuers[ISSUER].principal_for(claims)


def test_rules_map_subjects_verified_emails_and_groups_in_order() -> None:
    assert principal({"sub": "248289761001", "groups": ["preflight-labs-acme"]}) == Principal(
        "rita", Role.REVIEWER, "agency"
    )
    assert principal({"sub": "u-7", "email": "ops@hospital.example", "email_verified": True}) == Principal(
        "u-7", Role.OPERATOR, "st-marys", frozenset({"healthcare"})
    )
    assert principal({"sub": "u-8", "groups": ["x", "preflight-labs-acme"]}) == Principal(
        "u-8", Role.LAB, "acme"
    )


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "nobody"},
        {"sub": "u-9", "email": "ops@hospital.example"},  # not said to be verified
        {"sub": "u-9", "email": "ops@hospital.example", "email_verified": "true"},
        {"sub": "u-9", "groups": "preflight-labs-acme"},  # not a list
        {"sub": "has space", "groups": ["preflight-labs-acme"]},  # no principal id can be made of it
    ],
)
def test_everyone_no_rule_maps_is_denied(claims: dict[str, Any]) -> None:
    assert principal(claims) is None


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ("issuers: []", "issuers: a non-empty list"),
        ("[", "not YAML"),
        ("issuers: [{issuer: 'http://idp.example', audiences: [a], principals: [{}]}]", "issuers[0].issuer"),
        (DOCUMENT.replace("role: lab", "role: admin"), "issuers[0].principals[2].role"),
        (DOCUMENT.replace("claim: groups", "claim: roles"), "issuers[0].principals[2].claim"),
        (DOCUMENT.replace("audiences: [preflight-console]", "audiences: []"), "issuers[0].audiences"),
        (
            DOCUMENT.replace("principal_id: rita", "principal_id: 'r ita'"),
            "issuers[0].principals[0].principal_id",
        ),
        (DOCUMENT.replace("[healthcare]", "[Health Care]"), "issuers[0].principals[1].sectors[0]"),
    ],
)
def test_a_malformed_mapping_is_refused_naming_the_entry(document: str, named: str) -> None:
    with pytest.raises(MappingError, match=named.replace("[", r"\[").replace("]", r"\]")):
        Federation.parse(document)


def test_intake_reads_the_mapping_file_and_refuses_to_start_with_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "oidc.yaml"
    path.write_text(DOCUMENT)
    monkeypatch.setenv("PREFLIGHT_INTAKE_OIDC_FILE", str(path))
    federation = IntakeSettings.from_env().federation
    assert federation is not None and list(federation.issuers) == [ISSUER]
    path.write_text(DOCUMENT.replace("role: lab", "role: service"))
    with pytest.raises(ConfigError, match="PREFLIGHT_INTAKE_OIDC_FILE: issuers"):
        IntakeSettings.from_env()
