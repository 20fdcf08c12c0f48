"""Helpers for intake's tests: nothing mocked.

`ClearinghouseStandIn` serves the clearinghouse's GetSigningKey (the one call intake makes to it)
on loopback, with a real Ed25519 key that signs review reports as the clearinghouse does.
"""

from __future__ import annotations

import json
import uuid
from concurrent import futures
from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from preflight.clearinghouse.v1 import clearinghouse_pb2
from preflight.clearinghouse.v1 import events_pb2 as review_events

KEY_ID = "ed25519-stand-in"


class SigningKeys:
    """Answers GetSigningKey for its one key (NOT_FOUND otherwise) and notes who asked."""

    def __init__(self) -> None:
        self.private_key = Ed25519PrivateKey.generate()
        self.public_key = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.authorizations: list[str] = []

    def get_signing_key(
        self, request: clearinghouse_pb2.GetSigningKeyRequest, context: grpc.ServicerContext
    ) -> clearinghouse_pb2.GetSigningKeyResponse:
        self.authorizations += [
            value for key, value in context.invocation_metadata() if key == "authorization"
        ]
        if request.key_id != KEY_ID:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such signing key")
        return clearinghouse_pb2.GetSigningKeyResponse(
            key_id=KEY_ID, algorithm="Ed25519", public_key=self.public_key
        )

    def report(
        self,
        submission_id: str,
        *,
        signed_for: str = "",
        signer: Ed25519PrivateKey | None = None,
        **claims: Any,
    ) -> review_events.ReviewReportReady:
        """A ReviewReportReady for `submission_id`; its body is signed as being for `signed_for` (default:
        the same submission) by `signer` (default: this key)."""
        report_id = str(uuid.uuid4())
        body = json.dumps(
            {
                "schema": "preflight.review-report/1",
                "report_id": report_id,
                "submission_id": signed_for or submission_id,
                "version": 1,
                "signing_key_id": KEY_ID,
                "tier": "TIER_1",
                **claims,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        return review_events.ReviewReportReady(
            report_id=report_id,
            submission_id=submission_id,
            version=1,
            tier="TIER_1",
            body=body,
            signature=(signer or self.private_key).sign(body),
            signing_key_id=KEY_ID,
        )


class ClearinghouseStandIn:
    """`SigningKeys` served on 127.0.0.1 until `stop()`."""

    def __init__(self) -> None:
        self.keys = SigningKeys()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        method = grpc.unary_unary_rpc_method_handler(
            self.keys.get_signing_key,
            request_deserializer=clearinghouse_pb2.GetSigningKeyRequest.FromString,
            response_serializer=clearinghouse_pb2.GetSigningKeyResponse.SerializeToString,
        )
        service = clearinghouse_pb2.DESCRIPTOR.services_by_name["ClearinghouseService"].full_name
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {"GetSigningKey": method}),)
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None)
