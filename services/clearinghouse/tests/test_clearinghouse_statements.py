"""Operators' statements on a finding: the patch status is one of VEX's four statuses, and a
not-affected statement names its justification from CSAF's VEX flag labels (no other statement has
one); kept, audit-logged, shown to the operator's own organisation and reviewers, and carried by no
export (a statement is about the operator's deployment, not the products the advisory lists)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight_clearinghouse.adapters import tables
from preflight_clearinghouse.bootstrap import Components
from preflight_clearinghouse.domain.errors import InvalidInput
from preflight_clearinghouse.domain.findings.finding import PatchState, VexJustification
from preflight_testkit.clearinghouse import OP_A, OP_B, REVIEWER, Api, published_to_op_a
from preflight_testkit.rpc import field_violations
from sqlalchemy import select


def test_a_not_affected_statement_names_its_vex_justification_and_no_other_does(
    components: Components,
) -> None:
    registry = components.registry
    fid = published_to_op_a(components).finding_id
    refused = [
        (PatchState.NOT_AFFECTED, None),
        (PatchState.AFFECTED, VexJustification.COMPONENT_NOT_PRESENT),
        (PatchState.PATCHED, VexJustification.INLINE_MITIGATIONS_ALREADY_EXIST),
        (PatchState.UNKNOWN, VexJustification.VULNERABLE_CODE_NOT_PRESENT),
    ]
    for status, justification in refused:
        with pytest.raises(InvalidInput) as caught:
            registry.set_patch_status(OP_A, fid, status, "", justification)
        assert [v.field for v in caught.value.violations] == ["justification"]
    why = VexJustification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH
    shown = registry.set_patch_status(OP_A, fid, PatchState.NOT_AFFECTED, "feature disabled", why)
    assert [(p.organisation, p.status, p.justification) for p in shown.patch_statuses] == [
        ("op-a", PatchState.NOT_AFFECTED, why)
    ]
    registry.set_patch_status(OP_B, fid, PatchState.AFFECTED, "")
    everyone = registry.get(REVIEWER, fid).patch_statuses
    assert [(p.organisation, p.justification) for p in everyone] == [("op-a", why), ("op-b", None)]
    assert [p.organisation for p in registry.get(OP_B, fid).patch_statuses] == ["op-b"]
    # A later statement replaces the earlier one, justification included.
    again = registry.set_patch_status(OP_A, fid, PatchState.PATCHED, "")
    assert [(p.status, p.justification) for p in again.patch_statuses] == [(PatchState.PATCHED, None)]
    with components.engine.connect() as conn:
        a = tables.audit_log.c
        details = (
            conn.execute(select(a.details).where(a.action == "finding.patch_status").order_by(a.seq))
            .scalars()
            .all()
        )
    assert '"justification":"vulnerable_code_not_in_execute_path"' in details[0]
    entries, _ = registry.history(OP_A, fid, 0, "")
    (first, *_rest) = [e for e in entries if e.action == "finding.patch_status"]
    assert first.changed == ("justification", "patch_status")


def test_statements_over_grpc_the_sdk_and_the_cli(api: Api, tmp_path: Path) -> None:
    fid = published_to_op_a(api.components).finding_id
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.SetPatchStatus(
            pb.SetPatchStatusRequest(finding_id=fid, status=pb.PATCH_STATUS_NOT_AFFECTED, justification=42),  # type: ignore[arg-type]
            metadata=api.as_(OP_A),  # type: ignore[arg-type]
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(caught.value)) == ["justification"]
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.SetPatchStatus(
            pb.SetPatchStatusRequest(finding_id=fid, status=pb.PATCH_STATUS_NOT_AFFECTED),
            metadata=api.as_(OP_A),  # type: ignore[arg-type]
        )
    assert list(field_violations(caught.value)) == ["justification"]
    preflight = api.cli_as(OP_A, tmp_path)  # type: ignore[arg-type]
    code, out, err = preflight(
        "--json",
        "finding",
        "patch-status",
        fid,
        "--status",
        "not-affected",
        "--justification",
        "component-not-present",
    )
    assert code == 0, err
    assert '"justification": "VEX_JUSTIFICATION_COMPONENT_NOT_PRESENT"' in out
    seen = api.stub.GetFinding(pb.GetFindingRequest(finding_id=fid), metadata=api.as_(OP_A)).finding  # type: ignore[arg-type]
    assert [(p.status, p.justification) for p in seen.patch_statuses] == [
        (pb.PATCH_STATUS_NOT_AFFECTED, pb.VEX_JUSTIFICATION_COMPONENT_NOT_PRESENT)
    ]
    exported = api.stub.ExportFinding(
        pb.ExportFindingRequest(finding_id=fid, format=pb.EXPORT_FORMAT_CSAF),
        metadata=api.as_(OP_A),  # type: ignore[arg-type]
    ).document
    assert b"component_not_present" not in exported
