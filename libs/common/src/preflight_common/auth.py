"""Authentication and principals, the same for every Preflight gRPC service.

A caller presents a bearer token (`authorization: Bearer pft_…`) or a client
certificate (mTLS). Tokens are random, shown once, stored as SHA-256 hashes
with an expiry and a revocation time. Intake hosts the token registry
(`IdentityServicer` over a `TokenStore`); the other services resolve tokens
through `IdentityService/IntrospectToken` with a short cache
(`IntrospectionAuthenticator`): an expired token stops working everywhere at
its expiry, and a revoked one everywhere within the cache TTL
(`INTROSPECTION_CACHE_TTL`, 2 seconds, unless a service is configured
otherwise). A client certificate's subject maps to a principal: `CN` →
principal id, `O` → organisation, `OU` → role (lab, reviewer, operator, admin,
service); sectors are not carried by certificates.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.sdk.naming import NAME_RULE, is_valid_name
from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, Text, insert, select, update

from preflight_common.channels import aio_channel
from preflight_common.fields import InvalidArgument, timestamp, timestamp_field

TOKEN_PREFIX = "pft_"  # noqa: S105 - a public prefix, not a secret

INTROSPECTION_CACHE_TTL = 2.0
"""Seconds an introspection answer is reused: the bound on how long a revoked token keeps working."""

JOB_TOKEN_MAX_LIFETIME = timedelta(days=2)
"""The longest a job token may live: longer than any attempt's deadline, short enough that a
leaked one soon stops working even if nobody revokes it."""


class Role(enum.Enum):
    """What a principal may do (mirrors `preflight.identity.v1.Role`)."""

    LAB = "lab"
    REVIEWER = "reviewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    SERVICE = "service"
    WORKER = "worker"
    # A monitoring probe: each service answers it one listing, always empty, and nothing else.
    PROBE = "probe"

    def to_proto(self) -> identity_pb2.Role.ValueType:
        return identity_pb2.Role.Value(f"ROLE_{self.name}")

    @classmethod
    def from_proto(cls, value: identity_pb2.Role.ValueType) -> Role:
        name = identity_pb2.Role.Name(value)
        if name == "ROLE_UNSPECIFIED":
            raise ValueError("role is required")
        return cls[name.removeprefix("ROLE_")]


PROBE_METHODS: Final = frozenset(
    {
        "/preflight.identity.v1.IdentityService/IntrospectToken",
        "/preflight.benchmark.v1.BenchmarkService/ListJobs",
        "/preflight.clearinghouse.v1.ClearinghouseService/ListReports",
        "/preflight.notifier.v1.NotifierService/ListAlerts",
    }
)
"""The only methods a `Role.PROBE` principal may call (`grpcserver` refuses it any other with
PERMISSION_DENIED before the handler): one read per service, each answering an authenticated
probe with nothing to learn — its own token's principal from intake, an empty listing from the
others — so a probe proves that a service is up, reaches intake and authenticates its token,
and can change nothing."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    principal_id: str
    role: Role
    organisation: str
    sectors: frozenset[str] = field(default_factory=frozenset)

    def to_proto(self) -> identity_pb2.Principal:
        return identity_pb2.Principal(
            principal_id=self.principal_id,
            role=self.role.to_proto(),
            organisation=self.organisation,
            sectors=sorted(self.sectors),
        )

    @classmethod
    def from_proto(cls, message: identity_pb2.Principal) -> Principal:
        return cls(
            principal_id=message.principal_id,
            role=Role.from_proto(message.role),
            organisation=message.organisation,
            sectors=frozenset(message.sectors),
        )


_current_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("preflight_principal")


def current_principal() -> Principal:
    """The principal of the call being handled; raises LookupError outside an authenticated call."""
    return _current_principal.get()


def set_current_principal(principal: Principal) -> contextvars.Token[Principal]:
    """Bind `principal` to the running call (used by the server's auth interceptor)."""
    return _current_principal.set(principal)


def reset_current_principal(token: contextvars.Token[Principal]) -> None:
    _current_principal.reset(token)


def hash_token(token: str) -> str:
    """SHA-256 hex of a token: tokens carry 256 bits of randomness, so a fast hash suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_table(metadata: MetaData) -> Table:
    """Add the `api_tokens` table to a service's metadata."""
    return Table(
        "api_tokens",
        metadata,
        Column("token_id", String(64), primary_key=True),
        Column("token_hash", String(64), nullable=False, unique=True),
        Column("principal_id", String(200), nullable=False),
        Column("role", String(20), nullable=False),
        Column("organisation", String(200), nullable=False),
        Column("sectors", Text, nullable=False, default=""),
        Column("description", Text, nullable=False, default=""),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("revoked_at", DateTime(timezone=True), nullable=True),
    )


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    token: str
    expires_at: datetime


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


PRINCIPAL_ID_MAX = 256
PRINCIPAL_ID_RULE = f"must be 1-{PRINCIPAL_ID_MAX} printable characters without whitespace"


def is_valid_principal_id(principal_id: str) -> bool:
    """Whether `principal_id` (or a job id, a worker's principal id) follows `PRINCIPAL_ID_RULE`."""
    return 0 < len(principal_id) <= PRINCIPAL_ID_MAX and all(
        c.isprintable() and not c.isspace() for c in principal_id
    )


def principal_violations(
    principal_id: str, organisation: str, sectors: Iterable[str]
) -> list[tuple[str, str]]:
    """Why a token may not be issued to this principal, as (field, description) pairs.

    A principal id is 1 to `PRINCIPAL_ID_MAX` printable characters without whitespace (it is
    logged, audited and shown); organisation and sectors follow `preflight.sdk.naming`.
    """
    violations = []
    if not is_valid_principal_id(principal_id):
        violations.append(("principal.principal_id", PRINCIPAL_ID_RULE))
    if not is_valid_name(organisation):
        violations.append(("principal.organisation", NAME_RULE))
    for i, sector in enumerate(sectors):
        if not is_valid_name(sector):
            violations.append((f"principal.sectors[{i}]", NAME_RULE))
    return violations


class TokenStore:
    """Bearer tokens in a service's database. Only hashes are stored."""

    def __init__(
        self, engine: Engine, table: Table, default_lifetime: timedelta = timedelta(days=90)
    ) -> None:
        self._engine = engine
        self._table = table
        self._default_lifetime = default_lifetime
        self._revocation_listeners: list[Callable[[], None]] = []

    def on_revoke(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each revocation through this store (a cache forgets its answers)."""
        self._revocation_listeners.append(listener)

    def create(
        self, principal: Principal, expires_at: datetime | None = None, description: str = ""
    ) -> IssuedToken:
        """Issue a token for `principal`; the returned secret is not stored and cannot be shown again.

        Raises ValueError when the principal breaks `principal_violations` or the expiry is past.
        """
        violations = principal_violations(principal.principal_id, principal.organisation, principal.sectors)
        if violations:
            raise ValueError("; ".join(f"{name}: {description}" for name, description in violations))
        now = datetime.now(UTC)
        expiry = _aware(expires_at) if expires_at else now + self._default_lifetime
        if expiry <= now:
            raise ValueError("expires_at must be in the future")
        token_id = uuid.uuid4().hex
        token = f"{TOKEN_PREFIX}{token_id[:8]}_{secrets.token_urlsafe(32)}"
        with self._engine.begin() as conn:
            conn.execute(
                insert(self._table).values(
                    token_id=token_id,
                    token_hash=hash_token(token),
                    principal_id=principal.principal_id,
                    role=principal.role.value,
                    organisation=principal.organisation,
                    sectors=",".join(sorted(principal.sectors)),
                    description=description,
                    created_at=now,
                    expires_at=expiry,
                )
            )
        return IssuedToken(token_id, token, expiry)

    def revoke(self, token_id: str) -> bool:
        """Revoke a token; False when no such (unrevoked) token exists."""
        t = self._table
        with self._engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(t.c.token_id == token_id, t.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        for listener in self._revocation_listeners:
            listener()
        return result.rowcount == 1

    def resolve(self, token: str) -> tuple[Principal, str, datetime] | None:
        """(principal, token id, expiry) of an active token; None if unknown, expired or revoked."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        t = self._table
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.token_hash == hash_token(token))).first()
        if row is None or row.revoked_at is not None or _aware(row.expires_at) <= datetime.now(UTC):
            return None
        sectors = frozenset(s for s in row.sectors.split(",") if s)
        return (
            Principal(row.principal_id, Role(row.role), row.organisation, sectors),
            row.token_id,
            _aware(row.expires_at),
        )


class Authenticator(Protocol):
    """Resolves call credentials to a principal, or None (→ UNAUTHENTICATED)."""

    async def authenticate(
        self, token: str | None, context: grpc.aio.ServicerContext
    ) -> Principal | None: ...


def certificate_principal(context: grpc.aio.ServicerContext) -> Principal | None:
    """The principal named by a verified client certificate, if the call is over mTLS and its
    subject names a principal a token could be issued to (`principal_violations`)."""
    pems = context.auth_context().get("x509_pem_cert")
    if not pems:
        return None
    cert = x509.load_pem_x509_certificate(pems[0])

    def attribute(oid: x509.ObjectIdentifier) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    principal_id = attribute(NameOID.COMMON_NAME)
    organisation = attribute(NameOID.ORGANIZATION_NAME)
    try:
        role = Role(attribute(NameOID.ORGANIZATIONAL_UNIT_NAME).lower())
    except ValueError:
        return None
    if principal_violations(principal_id, organisation, ()):
        return None  # the same rules as for a token's principal
    return Principal(principal_id, role, organisation)


TokenLookup = Callable[[str], Awaitable[tuple[Principal | None, datetime | None]]]
"""Resolves a bearer token to (principal or None when it does not authenticate, its expiry or None)."""


class TokenCache:
    """Answers about bearer tokens, each reused for at most `ttl` seconds and never past the token's
    expiry: an expired token is refused at its expiry, a revoked one within `ttl` (or at once when
    the revocation calls `clear`: an answer a lookup under way then brings back is not kept).
    Refusals are cached too. At most `max_entries` answers are kept, so callers presenting many
    distinct (e.g. made-up) tokens cannot grow it forever."""

    def __init__(self, ttl: float = INTROSPECTION_CACHE_TTL, *, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        # token hash -> (monotonic end of the TTL, principal or None, token expiry or None)
        self._entries: dict[str, tuple[float, Principal | None, datetime | None]] = {}
        # Bumped by `clear` (from any thread): an answer looked up before a clear is not kept.
        self._generation = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every answer, also those of lookups still under way (any thread)."""
        with self._lock:
            self._generation += 1
            self._entries = {}

    async def resolve(self, token: str, lookup: TokenLookup) -> Principal | None:
        """The cached answer for `token` while it holds, else `lookup`'s (then cached)."""
        key = hash_token(token)
        cached = self._entries.get(key)
        now = time.monotonic()
        if cached and cached[0] > now and (cached[2] is None or cached[2] > datetime.now(UTC)):
            return cached[1]
        generation = self._generation
        principal, expires = await lookup(token)
        with self._lock:
            if self._ttl <= 0 or generation != self._generation:
                return principal
            if len(self._entries) >= self._max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self._max_entries:
                    self._entries = {}
            self._entries[key] = (now + self._ttl, principal, expires)
        return principal


class LocalAuthenticator:
    """Authenticates against a TokenStore in this process's own database (the issuer).

    With `cache_ttl` > 0 answers are cached (`TokenCache`); a revocation through the same store
    clears the cache at once, one made by another process is honoured within `cache_ttl`.
    """

    def __init__(self, store: TokenStore, *, cache_ttl: float = 0.0) -> None:
        self._store = store
        self._cache = TokenCache(cache_ttl)
        store.on_revoke(self._cache.clear)

    async def authenticate(self, token: str | None, context: grpc.aio.ServicerContext) -> Principal | None:
        if token is None:
            return certificate_principal(context)
        return await self._cache.resolve(token, self._lookup)

    async def _lookup(self, token: str) -> tuple[Principal | None, datetime | None]:
        resolved = await asyncio.to_thread(self._store.resolve, token)
        return (resolved[0], resolved[2]) if resolved else (None, None)


class IntrospectionAuthenticator:
    """Authenticates by asking the issuer's IdentityService, caching answers for `cache_ttl` seconds
    (`TokenCache`): an expired token is refused at its expiry (as the issuer reported it), a revoked
    one within `cache_ttl`.
    """

    def __init__(
        self,
        target: str,
        service_token: str,
        *,
        cache_ttl: float = INTROSPECTION_CACHE_TTL,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._target = target
        self._service_token = service_token
        self._cache = TokenCache(cache_ttl)
        self._credentials = credentials
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> identity_pb2_grpc.IdentityServiceStub:
        if self._channel is None:
            self._channel = aio_channel(self._target, self._credentials)
        return identity_pb2_grpc.IdentityServiceStub(self._channel)

    async def authenticate(self, token: str | None, context: grpc.aio.ServicerContext) -> Principal | None:
        if token is None:
            return certificate_principal(context)
        return await self._cache.resolve(token, self._introspect)

    async def _introspect(self, token: str) -> tuple[Principal | None, datetime | None]:
        response = await self._stub().IntrospectToken(
            identity_pb2.IntrospectTokenRequest(token=token),
            metadata=(("authorization", f"Bearer {self._service_token}"),),
            timeout=5.0,
        )
        principal = Principal.from_proto(response.principal) if response.active else None
        expires = response.expires_at.ToDatetime(tzinfo=UTC) if response.HasField("expires_at") else None
        return principal, expires

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


async def require_role(context: grpc.aio.ServicerContext, *roles: Role) -> Principal:
    """The caller, if its role is one of `roles`; otherwise the call ends with PERMISSION_DENIED."""
    principal = current_principal()
    if principal.role not in roles:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED, f"requires role {' or '.join(r.value for r in roles)}"
        )
    return principal


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    """`preflight.identity.v1.IdentityService` over a TokenStore."""

    def __init__(self, store: TokenStore) -> None:
        self._store = store

    async def CreateToken(
        self, request: identity_pb2.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreateTokenResponse:
        await require_role(context, Role.ADMIN)
        claimed = request.principal
        violations = principal_violations(claimed.principal_id, claimed.organisation, claimed.sectors)
        if violations:
            raise InvalidArgument(violations)
        try:
            principal = Principal.from_proto(request.principal)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"principal.role: {exc}")
        expires = timestamp_field(request, "expires_at")
        try:
            issued = await asyncio.to_thread(self._store.create, principal, expires, request.description)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return identity_pb2.CreateTokenResponse(
            token_id=issued.token_id, token=issued.token, expires_at=timestamp(issued.expires_at)
        )

    async def IssueJobToken(
        self, request: identity_pb2.IssueJobTokenRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.IssueJobTokenResponse:
        caller = await require_role(context, Role.SERVICE)
        violations = [] if is_valid_principal_id(request.job_id) else [("job_id", PRINCIPAL_ID_RULE)]
        expires = timestamp_field(request, "expires_at")
        now = datetime.now(UTC)
        if expires is None or not now < expires <= now + JOB_TOKEN_MAX_LIFETIME:
            violations.append(
                ("expires_at", f"required, in the future and at most {JOB_TOKEN_MAX_LIFETIME} ahead")
            )
        if violations:
            raise InvalidArgument(violations)
        worker = Principal(request.job_id, Role.WORKER, caller.organisation)
        issued = await asyncio.to_thread(
            self._store.create, worker, expires, f"job {request.job_id}, issued to {caller.principal_id}"
        )
        return identity_pb2.IssueJobTokenResponse(
            token_id=issued.token_id, token=issued.token, expires_at=timestamp(issued.expires_at)
        )

    async def RevokeToken(
        self, request: identity_pb2.RevokeTokenRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.RevokeTokenResponse:
        # Admins revoke any token; anyone may revoke the token it presents (how a web console,
        # holding no privileged token, ends at sign-out the token a sign-in issued). Another
        # principal's token, or one that does not exist, is PERMISSION_DENIED alike.
        if not await self._presents(context, request.token_id):
            await require_role(context, Role.ADMIN)
        if not await asyncio.to_thread(self._store.revoke, request.token_id):
            await context.abort(grpc.StatusCode.NOT_FOUND, "token_id: no active token with this id")
        return identity_pb2.RevokeTokenResponse()

    async def _presents(self, context: grpc.aio.ServicerContext, token_id: str) -> bool:
        """Whether `token_id` names the active token the caller presents as its bearer token."""
        token = bearer_token(context.invocation_metadata())
        resolved = await asyncio.to_thread(self._store.resolve, token) if token else None
        return resolved is not None and bool(token_id) and resolved[1] == token_id

    async def IntrospectToken(
        self, request: identity_pb2.IntrospectTokenRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.IntrospectTokenResponse:
        # Any principal may introspect the token it presents (how a web console, holding no
        # privileged token, learns who signed in); only services and admins introspect others'.
        if request.token != bearer_token(context.invocation_metadata()):
            await require_role(context, Role.SERVICE, Role.ADMIN)
        resolved = await asyncio.to_thread(self._store.resolve, request.token)
        if resolved is None:
            return identity_pb2.IntrospectTokenResponse(active=False)
        principal, token_id, expires = resolved
        return identity_pb2.IntrospectTokenResponse(
            active=True, principal=principal.to_proto(), expires_at=timestamp(expires), token_id=token_id
        )


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The bearer token from call metadata, or None."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return ""
    return None
