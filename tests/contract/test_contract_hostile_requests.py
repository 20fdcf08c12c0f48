"""Every RPC of every Preflight service against a hostile corpus, over real gRPC on loopback.

The four services' real servicers (built by their own bootstraps on SQLite, no broker needed to
answer calls) are served by `preflight_common.grpcserver.build_server`, authenticated against
intake's token registry. Every method of every service (enumerated from the generated
descriptors, so a new RPC is covered without editing this file) receives, from a caller of
each role: unparseable bytes, and requests whose every field is hostile — overlong strings,
control characters, out-of-range timestamps, extreme and negative numbers, unknown enum
values, oversized repeated fields. No answer may be UNKNOWN or INTERNAL, or carry an
exception's class or text. The corpus is a data file, data/hostile_corpus.yaml.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
import yaml
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.benchmark.v1 import benchmark_pb2, benchmark_pb2_grpc
from preflight.clearinghouse.v1 import clearinghouse_pb2
from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc as clearinghouse_grpc
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc, sign_in_pb2, sign_in_pb2_grpc
from preflight.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from preflight_common.auth import IdentityServicer, LocalAuthenticator, Principal, Role, TokenStore
from preflight_common.grpcserver import Register, build_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

FILE_DESCRIPTORS = {
    "intake": [identity_pb2.DESCRIPTOR, intake_pb2.DESCRIPTOR, sign_in_pb2.DESCRIPTOR],
    "benchmark": [benchmark_pb2.DESCRIPTOR],
    "clearinghouse": [clearinghouse_pb2.DESCRIPTOR],
    "notifier": [notifier_pb2.DESCRIPTOR],
}
METHODS: list[tuple[str, MethodDescriptor]] = [
    (server, method)
    for server, files in FILE_DESCRIPTORS.items()
    for file in files
    for service in file.services_by_name.values()
    for method in service.methods
]
PRINCIPALS = {
    "lab": Principal("ada@lab-a", Role.LAB, "lab-a"),
    "reviewer": Principal("rita@caisi", Role.REVIEWER, "caisi"),
    "operator": Principal("ops@bank-a", Role.OPERATOR, "bank-a", frozenset({"finance"})),
    "admin": Principal("root@preflight", Role.ADMIN, "preflight"),
    "service": Principal("svc@preflight", Role.SERVICE, "preflight"),
    "worker": Principal("job-1@benchmark", Role.WORKER, "preflight"),
    "probe": Principal("probe@preflight", Role.PROBE, "preflight"),
}

CORPUS = yaml.safe_load((Path(__file__).parent / "data" / "hostile_corpus.yaml").read_text(encoding="utf-8"))
GARBAGE: list[bytes] = [bytes.fromhex(raw) for raw in CORPUS["garbage"]]
HOSTILE_STRINGS: list[str] = [
    entry["repeat"] * entry["times"] if isinstance(entry, dict) else entry for entry in CORPUS["strings"]
]
HOSTILE_TIMESTAMPS = [Timestamp(**stamp) for stamp in CORPUS["timestamps"]]
_CPP_TYPES = {
    "int32": FieldDescriptor.CPPTYPE_INT32,
    "int64": FieldDescriptor.CPPTYPE_INT64,
    "uint32": FieldDescriptor.CPPTYPE_UINT32,
    "uint64": FieldDescriptor.CPPTYPE_UINT64,
    "double": FieldDescriptor.CPPTYPE_DOUBLE,
    "float": FieldDescriptor.CPPTYPE_FLOAT,
    "enum": FieldDescriptor.CPPTYPE_ENUM,
    "bool": FieldDescriptor.CPPTYPE_BOOL,
}
_INTS = {_CPP_TYPES[name]: values for name, values in CORPUS["numbers"].items()}
# Markers of an exception reaching a caller: gRPC's "Unexpected <class ...>", a traceback, a
# Python exception's class name ("ValueError", "DecodeError: ..."), a SQL driver's text.
LEAKS = re.compile(
    r"Traceback|Unexpected|<class |\b\w+(Error|Exception)\b|Error:|sqlite|psycopg|SELECT |INSERT "
)
STREAM_READ = 1.5


ALL_KINDS = frozenset({"string", "number", "timestamp"})


@dataclass(frozen=True)
class Variant:
    """How to fill a request: the i-th hostile value of each kind in `kinds` (other fields unset)."""

    index: int
    repeat: int = 1
    kinds: frozenset[str] = ALL_KINDS


def _fill(message: Message, variant: Variant, depth: int = 0) -> None:
    """Set every field of `message` (nested messages to a bounded depth) to a hostile value."""
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp":
            if "timestamp" not in variant.kinds:
                continue
            stamp = HOSTILE_TIMESTAMPS[variant.index % len(HOSTILE_TIMESTAMPS)]
            if field.is_repeated:
                getattr(message, field.name).add().CopyFrom(stamp)
            else:
                getattr(message, field.name).CopyFrom(stamp)
        elif field.message_type is not None:
            if depth >= 4:
                continue
            if field.is_repeated:
                for _ in range(min(variant.repeat, 16)):
                    _fill(getattr(message, field.name).add(), variant, depth + 1)
            else:
                _fill(getattr(message, field.name), variant, depth + 1)
        elif _kind(field) in variant.kinds:
            value = _scalar(field, variant)
            if field.is_repeated:
                getattr(message, field.name).extend([value] * variant.repeat)
            else:
                setattr(message, field.name, value)


def _kind(field: FieldDescriptor) -> str:
    return "string" if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES) else "number"


def _scalar(field: FieldDescriptor, variant: Variant) -> Any:
    if field.type == FieldDescriptor.TYPE_STRING:
        return HOSTILE_STRINGS[variant.index % len(HOSTILE_STRINGS)]
    if field.type == FieldDescriptor.TYPE_BYTES:
        return HOSTILE_STRINGS[variant.index % len(HOSTILE_STRINGS)].encode()
    values = _INTS[field.cpp_type]
    return values[variant.index % len(values)]


def corpus(request_type: Descriptor) -> Iterator[tuple[str, bytes]]:
    """(label, serialized request) pairs: garbage bytes, then hostile messages of `request_type`."""
    for i, raw in enumerate(GARBAGE):
        yield f"garbage[{i}]", raw
    cls = GetMessageClass(request_type)
    yield "empty", b""
    variants = [
        *(Variant(i) for i in range(len(HOSTILE_STRINGS))),
        *(Variant(i, kinds=frozenset({"string"})) for i in range(len(HOSTILE_STRINGS))),
        *(Variant(i, kinds=frozenset({"number"})) for i in range(3)),
        *(Variant(i, kinds=frozenset({"timestamp"})) for i in range(len(HOSTILE_TIMESTAMPS))),
        Variant(3, repeat=2000),
    ]
    for variant in variants:
        request = cls()
        _fill(request, variant)
        kinds = "+".join(sorted(variant.kinds))
        yield f"hostile[{kinds} {variant.index} x{variant.repeat}]", request.SerializeToString()


Served = dict[str, tuple[list[Register], list[str]]]


def _build(root: Path, env: pytest.MonkeyPatch) -> tuple[Served, TokenStore, list[Callable[[], None]]]:
    """Each service's components from its own bootstrap and environment (no broker is contacted)."""
    from preflight_benchmark import bootstrap as benchmark
    from preflight_benchmark.adapters.grpc import BenchmarkServicer
    from preflight_benchmark.config import BenchmarkSettings
    from preflight_clearinghouse import bootstrap as clearinghouse
    from preflight_clearinghouse.adapters.grpc import ClearinghouseServicer
    from preflight_clearinghouse.config import ClearinghouseSettings
    from preflight_intake import bootstrap as intake
    from preflight_intake.adapters.crypto import Keyring, new_key_entry
    from preflight_intake.adapters.grpc import IntakeServicer
    from preflight_intake.adapters.sign_in import SignInServicer
    from preflight_intake.config import IntakeSettings
    from preflight_notifier import bootstrap as notifier
    from preflight_notifier.adapters.grpc import NotifierServicer
    from preflight_notifier.config import NotifierSettings

    def database(name: str) -> None:
        env.setenv("PREFLIGHT_DATABASE_URL", f"sqlite:///{root / f'{name}.db'}")

    env.setenv("PREFLIGHT_CLEARINGHOUSE_STATE_DIR", str(root / "clearinghouse"))
    env.setenv("PREFLIGHT_BENCHMARK_LOG_ROOT", str(root / "eval-logs"))
    env.setenv("PREFLIGHT_BENCHMARK_WORK_DIR", str(root / "work"))
    database("intake")
    # OpenID Connect sign-in from an issuer that does not answer: what reaches it must be refused
    # before intake would ask the issuer, or answer UNAVAILABLE.
    mapping = root / "oidc.yaml"
    mapping.write_text(
        "issuers: [{issuer: 'http://127.0.0.1:1', audiences: [console], principals: "
        "[{claim: sub, value: rita, role: reviewer, organisation: caisi}]}]"
    )
    env.setenv("PREFLIGHT_INTAKE_OIDC_FILE", str(mapping))
    intake_settings = IntakeSettings.from_env()
    i = intake.build(intake_settings, Keyring.parse(new_key_entry("contract")))
    database("benchmark")
    b = benchmark.build(BenchmarkSettings.from_env(), "127.0.0.1:1")
    database("clearinghouse")
    settings = ClearinghouseSettings.from_env()
    c = clearinghouse.build(settings, clearinghouse.signer_from_env(settings))
    database("notifier")
    n = notifier.build(NotifierSettings.from_env())

    intake_api, identity_api = IntakeServicer(i.intake), IdentityServicer(i.tokens)
    sign_in_api = SignInServicer(intake_settings.federation, i.tokens, intake_settings.oidc_token_lifetime)
    benchmark_api = BenchmarkServicer(b.store)
    clearinghouse_api = ClearinghouseServicer(c.reviews, c.registry, c.checkpoints, stream_poll_interval=0.2)
    notifier_api = NotifierServicer(n.engine, n.clock, stream_poll_interval=0.2)
    served: Served = {
        "intake": (
            [
                lambda s: intake_pb2_grpc.add_IntakeServiceServicer_to_server(intake_api, s),
                lambda s: identity_pb2_grpc.add_IdentityServiceServicer_to_server(identity_api, s),
                lambda s: sign_in_pb2_grpc.add_SignInServiceServicer_to_server(sign_in_api, s),
            ],
            [
                "preflight.intake.v1.IntakeService",
                "preflight.identity.v1.IdentityService",
                "preflight.intake.v1.SignInService",
            ],
        ),
        "benchmark": (
            [lambda s: benchmark_pb2_grpc.add_BenchmarkServiceServicer_to_server(benchmark_api, s)],
            ["preflight.benchmark.v1.BenchmarkService"],
        ),
        "clearinghouse": (
            [lambda s: clearinghouse_grpc.add_ClearinghouseServiceServicer_to_server(clearinghouse_api, s)],
            ["preflight.clearinghouse.v1.ClearinghouseService"],
        ),
        "notifier": (
            [lambda s: notifier_pb2_grpc.add_NotifierServiceServicer_to_server(notifier_api, s)],
            ["preflight.notifier.v1.NotifierService"],
        ),
    }
    return served, i.tokens, [i.engine.dispose, b.engine.dispose, c.engine.dispose, n.engine.dispose]


@dataclass
class Stack:
    targets: dict[str, str]
    tokens: dict[str, str]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """The four services' servicers on loopback, each served by `build_server`."""
    from preflight_intake.adapters.sign_in import EXCHANGE_METHOD

    with pytest.MonkeyPatch.context() as env:
        served, tokens_store, closers = _build(Path(tmp_path_factory.mktemp("contract")), env)
    authenticator = LocalAuthenticator(tokens_store)
    servers: list[grpc.aio.Server] = []
    targets = {}
    for name, (registrations, service_names) in served.items():
        server, port, _ = build_server(
            "127.0.0.1:0",
            registrations,
            authenticator=authenticator,
            service_names=service_names,
            public_methods=(EXCHANGE_METHOD,),
        )
        await server.start()
        servers.append(server)
        targets[name] = f"127.0.0.1:{port}"
    tokens = {role: tokens_store.create(principal).token for role, principal in PRINCIPALS.items()}
    yield Stack(targets, tokens)
    for server in servers:
        await server.stop(None)
    for close in closers:
        close()


def _leak(code: grpc.StatusCode, details: str) -> str | None:
    if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
        return f"{code.name}: {details[:200]!r}"
    if LEAKS.search(details):
        return f"{code.name} leaks: {details[:200]!r}"
    return None


async def _call(channel: grpc.aio.Channel, method: MethodDescriptor, raw: bytes, token: str) -> str | None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path)(raw, metadata=metadata, timeout=STREAM_READ)
            async for _ in stream:
                break
            stream.cancel()
        else:
            await channel.unary_unary(path)(raw, metadata=metadata, timeout=30)
    except grpc.aio.AioRpcError as error:
        if method.server_streaming and error.code() in (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.CANCELLED,
        ):
            return None
        return _leak(error.code(), error.details() or "")
    return None


@pytest.mark.parametrize(
    ("server", "method"),
    METHODS,
    ids=[f"{m.containing_service.name}.{m.name}" for _, m in METHODS],
)
async def test_no_hostile_request_gets_an_internal_error_or_an_exceptions_text(
    stack: Stack, server: str, method: MethodDescriptor
) -> None:
    failures: list[str] = []
    limit = asyncio.Semaphore(16)
    async with grpc.aio.insecure_channel(stack.targets[server]) as channel:

        async def probe(role: str, label: str, raw: bytes) -> None:
            async with limit:
                found = await _call(channel, method, raw, stack.tokens[role])
            if found:
                failures.append(f"{role} {label}: {found}")

        await asyncio.gather(
            *(probe(role, label, raw) for label, raw in corpus(method.input_type) for role in stack.tokens)
        )
    assert not failures, "\n".join(sorted(failures))


async def test_every_rpc_of_every_service_is_probed() -> None:
    assert len(METHODS) == 56


async def test_every_role_is_probed() -> None:
    assert {principal.role for principal in PRINCIPALS.values()} == set(Role)
