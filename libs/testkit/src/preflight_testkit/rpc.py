"""gRPC answers as tests read them."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """The `google.rpc.BadRequest` field violations of an INVALID_ARGUMENT answer, field ->
    description, in the order the server gave them; fails the test when the answer has none."""
    status = rpc_status.from_call(error)
    assert status is not None, error
    violations: dict[str, str] = {}
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations.update((v.field, v.description) for v in bad_request.field_violations)
    assert violations, f"no field violations in {error}"
    return violations


def introspect(target: str, token: str) -> identity_pb2.IntrospectTokenResponse:
    """IdentityService.IntrospectToken at `target` (plaintext gRPC) about `token`, asked with
    `token` itself; a refusal raises the `grpc.RpcError`."""
    with grpc.insecure_channel(target) as channel:
        answer: identity_pb2.IntrospectTokenResponse = identity_pb2_grpc.IdentityServiceStub(
            channel
        ).IntrospectToken(
            identity_pb2.IntrospectTokenRequest(token=token),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=30,
        )
        return answer
