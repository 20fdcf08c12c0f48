"""`preflight.intake.v1.SignInService`: an OpenID Connect ID token exchanged for a Preflight token.

Intake trusts nobody's word for the ID token, the console's included: it verifies the token
itself (`preflight_common.oidc.Issuer.verify`) against the issuer the token names, if that
issuer is one of `Federation`'s, for one of that issuer's declared audiences, carrying the
sign-in's nonce and issued no more than `MAX_ID_TOKEN_AGE` seconds ago (an ID token found
later, in a log or a browser's history, exchanges for nothing). Then the declared mapping names
the principal (none: PERMISSION_DENIED), and the token store issues a token for it that lasts
the session's lifetime, at most the configured bound; it is recorded like every token, so
`RevokeToken` revokes it.

Statuses: a missing or malformed field → INVALID_ARGUMENT naming it; a token that does not
verify → UNAUTHENTICATED saying which check failed; an unmapped user → PERMISSION_DENIED;
a provider that cannot be reached → UNAVAILABLE; no mapping configured → FAILED_PRECONDITION.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import grpc
from preflight.intake.v1 import sign_in_pb2, sign_in_pb2_grpc
from preflight_common.auth import Principal, TokenStore
from preflight_common.fields import InvalidArgument, timestamp
from preflight_common.oidc import InvalidIdToken, Issuer, IssuerUnavailable, unverified_issuer

from preflight_intake.domain.federation import Federation

log = logging.getLogger(__name__)

EXCHANGE_METHOD = "/preflight.intake.v1.SignInService/ExchangeIdToken"
"""Called without credentials (`build_server`'s `public_methods`): the ID token is the credential."""

MAX_ID_TOKEN_AGE = 600.0
"""Seconds after its issue an ID token may still be exchanged: a sign-in exchanges it at once."""


class SignInServicer(sign_in_pb2_grpc.SignInServiceServicer):
    """Exchanges ID tokens from `federation`'s issuers for tokens of `store`, lasting at most
    `max_lifetime` seconds."""

    def __init__(self, federation: Federation | None, store: TokenStore, max_lifetime: float) -> None:
        self._federation = federation
        self._issuers = {url: Issuer(url) for url in (federation.issuers if federation else ())}
        self._store = store
        self._max_lifetime = max_lifetime

    async def ExchangeIdToken(
        self, request: sign_in_pb2.ExchangeIdTokenRequest, context: grpc.aio.ServicerContext
    ) -> sign_in_pb2.ExchangeIdTokenResponse:
        try:
            principal, description = await self._principal(request)
        except _Refused as refused:
            await context.abort(refused.code, refused.message)
        wanted = request.lifetime_seconds or self._max_lifetime
        expires = datetime.now(UTC) + timedelta(seconds=min(wanted, self._max_lifetime))
        issued = await asyncio.to_thread(self._store.create, principal, expires, description)
        log.info("issued token %s to %s (%s)", issued.token_id, principal.principal_id, description)
        return sign_in_pb2.ExchangeIdTokenResponse(
            token_id=issued.token_id,
            token=issued.token,
            expires_at=timestamp(issued.expires_at),
            principal=principal.to_proto(),
        )

    async def _principal(self, request: sign_in_pb2.ExchangeIdTokenRequest) -> tuple[Principal, str]:
        """The principal the verified ID token maps to, and the issued token's description."""
        violations = []
        if not request.id_token:
            violations.append(("id_token", "required: the ID token from the provider's token endpoint"))
        if not request.nonce:
            violations.append(("nonce", "required: the nonce of the authorization request"))
        if violations:
            raise InvalidArgument(violations)
        if self._federation is None:
            raise _Refused(grpc.StatusCode.FAILED_PRECONDITION, "OpenID Connect sign-in is not set up")
        try:
            url = unverified_issuer(request.id_token)
        except InvalidIdToken as exc:
            raise InvalidArgument([("id_token", str(exc))]) from None
        trusted = self._federation.issuers.get(url)
        if trusted is None:
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED, "id_token: not from a trusted issuer")
        try:
            claims = await asyncio.to_thread(
                self._issuers[url].verify,
                request.id_token,
                audiences=trusted.audiences,
                nonce=request.nonce,
                max_age=MAX_ID_TOKEN_AGE,
            )
        except InvalidIdToken as exc:
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED, f"id_token: {exc}") from None
        except IssuerUnavailable as exc:
            log.warning("OpenID provider %s: %s", url, exc)
            raise _Refused(grpc.StatusCode.UNAVAILABLE, "the OpenID provider did not answer; retry") from None
        principal = trusted.principal_for(claims)
        if principal is None:
            raise _Refused(grpc.StatusCode.PERMISSION_DENIED, "this user maps to no Preflight principal")
        return principal, f"OpenID Connect sign-in: {url} subject {claims['sub']!r}"


class _Refused(Exception):
    """End the call with `code` and `message`."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
