"""What the console's use cases need from the outside: the services' APIs (`adapters.apis.Apis`).

Every call is made as the holder of a token (the signed-in user's), and a refused call raises the
SDK's typed error for its status (`preflight.sdk.errors.PreflightError`: `Unauthenticated`,
`PermissionDenied`, `NotFound`, `Unavailable`, …), whichever way it was made.
"""

from __future__ import annotations

from typing import Protocol

from preflight.clearinghouse.v1 import clearinghouse_pb2
from preflight.identity.v1 import identity_pb2
from preflight.intake.v1 import sign_in_pb2
from preflight.sdk.aio import (
    AsyncBenchmarkClient,
    AsyncClearinghouseClient,
    AsyncIntakeClient,
    AsyncNotifierClient,
)


class ServiceApis(Protocol):
    """The services the console calls, each call as the holder of `token`."""

    def intake(self, token: str) -> AsyncIntakeClient:
        """Intake (and its IdentityService), as the holder of `token`."""
        ...

    def benchmark(self, token: str) -> AsyncBenchmarkClient:
        """The benchmark service, as the holder of `token`."""
        ...

    def clearinghouse(self, token: str) -> AsyncClearinghouseClient:
        """The clearinghouse, as the holder of `token`."""
        ...

    def notifier(self, token: str) -> AsyncNotifierClient:
        """The notifier, as the holder of `token`."""
        ...

    async def introspect(self, token: str) -> identity_pb2.IntrospectTokenResponse:
        """What the identity service says of `token`, asked with `token` itself."""
        ...

    async def exchange_id_token(
        self, request: sign_in_pb2.ExchangeIdTokenRequest
    ) -> sign_in_pb2.ExchangeIdTokenResponse:
        """A Preflight token for a verified OpenID Connect ID token (asked without a token: the ID
        token is the credential)."""
        ...

    async def finding(self, token: str, finding_id: str) -> clearinghouse_pb2.GetFindingResponse:
        """One finding as the holder of `token` may see it, with the states it may move it to."""
        ...
