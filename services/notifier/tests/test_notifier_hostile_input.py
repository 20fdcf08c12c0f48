"""The notifier's API against hostile input on loopback: a huge or pathological silence matcher
cannot stall the service, out-of-range timestamps and forged page tokens are INVALID_ARGUMENT
naming the field; a routing file's audience names follow the shared grammar."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.notifier.v1 import notifier_pb2
from preflight_common.config import ConfigError
from preflight_common.fields import MATCHER_LIMIT, timestamp
from preflight_notifier.adapters import tables
from preflight_notifier.adapters.routing_file import parse_routing
from preflight_notifier.bootstrap import Components
from preflight_notifier.domain import matchers
from preflight_notifier.domain.matchers import Matcher, MatchOp
from preflight_testkit.notifier import START, Api
from preflight_testkit.rpc import field_violations
from sqlalchemy import insert

REGEX = notifier_pb2.MATCH_OPERATOR_REGEX


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'notifier.db'}"


@pytest.fixture
def compile_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The patterns RE2 is asked to compile from now on, in order (the real RE2 compiles them)."""
    calls: list[str] = []
    real_compile = matchers.re2.compile

    def counting_compile(pattern: str, options: Any) -> Any:
        calls.append(pattern)
        return real_compile(pattern, options)

    monkeypatch.setattr(matchers.re2, "compile", counting_compile)
    return calls


def silence(value: str, **fields: Timestamp) -> notifier_pb2.CreateSilenceRequest:
    request = notifier_pb2.CreateSilenceRequest(
        matchers=[notifier_pb2.Matcher(label="subject_id", operator=REGEX, value=value)],
        ends_at=timestamp(START + timedelta(days=1)),
    )
    for name, value_ in fields.items():
        getattr(request, name).CopyFrom(value_)
    return request


async def _timed_list(api: Api) -> float:
    begun = time.monotonic()
    await api.stub.ListAlerts(notifier_pb2.ListAlertsRequest(), metadata=api.auth("bank-b"), timeout=60)
    return time.monotonic() - begun


async def test_a_megabyte_regex_is_refused_at_once_and_other_callers_are_not_held(api: Api) -> None:
    await _timed_list(api)  # connected and warm
    huge = "(a|b|c)*" * (1 << 17)  # 1 MiB
    hostile = asyncio.ensure_future(
        api.stub.CreateSilence(silence(huge), metadata=api.auth("bank-a"), timeout=60)
    )
    other = await _timed_list(api)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await hostile
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == {"matchers[0].value": f"at most {MATCHER_LIMIT} characters"}
    assert other < 5.0, f"another caller's ListAlerts took {other:.1f}s"
    listed = await api.stub.ListSilences(notifier_pb2.ListSilencesRequest(), metadata=api.auth("bank-a"))
    assert list(listed.silences) == []


async def test_regexes_are_re2_so_backreferences_are_refused_and_nested_repeats_are_linear(api: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api.stub.CreateSilence(silence("(a)\\1"), metadata=api.auth("bank-a"), timeout=30)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {"matchers[0]"}
    created = await api.stub.CreateSilence(silence("(a+)+b"), metadata=api.auth("bank-a"), timeout=30)
    assert created.silence.matchers[0].value == "(a+)+b"

    answer: list[bool] = []
    matcher = Matcher("subject_id", MatchOp.REGEX, "(a+)+b")
    # With a backtracking engine this takes longer than the universe's age; a daemon thread keeps
    # a regression from hanging the suite.
    worker = threading.Thread(
        target=lambda: answer.append(matcher.matches({"subject_id": ["a" * 64 + "!"]})), daemon=True
    )
    worker.start()
    worker.join(10)
    assert answer == [False]


@pytest.mark.parametrize(
    ("field", "stamp"),
    [
        ("starts_at", Timestamp(seconds=0, nanos=-1)),
        ("starts_at", Timestamp(seconds=253402300800)),
        ("ends_at", Timestamp(seconds=0, nanos=-1)),
        ("ends_at", Timestamp(seconds=253402300800)),
    ],
)
async def test_an_out_of_range_silence_time_is_invalid_argument_naming_it(
    api: Api, field: str, stamp: Timestamp
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api.stub.CreateSilence(silence("x", **{field: stamp}), metadata=api.auth("bank-a"), timeout=30)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {field}


async def test_alert_page_tokens_cannot_be_forged(api: Api) -> None:
    for bad in ("9" * 40, "5", "0"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await api.stub.ListAlerts(
                notifier_pb2.ListAlertsRequest(page_token=bad), metadata=api.auth("reviewer"), timeout=30
            )
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, bad
        assert set(field_violations(refused.value)) == {"page_token"}


@pytest.mark.parametrize(
    ("audience", "named"),
    [
        ({"role": "operator", "organisation": "Bank A"}, "organisation"),
        ({"role": "operator", "organisation": "https://bank-a.example/"}, "organisation"),
        ({"role": "operator", "organisation": "bank-a", "sectors": ["finance", "Fin ance"]}, "sector"),
    ],
)
def test_a_routing_file_audience_outside_the_name_grammar_is_a_config_error(
    audience: dict[str, object], named: str
) -> None:
    document = {
        "route": {"receiver": "bank"},
        "receivers": [{"name": "bank", "audience": audience, "email": {"to": ["ops@bank-a.example"]}}],
    }
    with pytest.raises(ConfigError, match=rf"receivers\[0\]: {named} must be"):
        parse_routing(document)


async def test_stored_silences_that_are_not_re2_are_ignored_and_big_ones_compile_once(
    api: Api, notifier: Components, compile_calls: list[str]
) -> None:
    """Silences stored before matchers were RE2 (and bounded) neither fail listing nor are compiled (or
    refused) again on each listing."""
    rows = {
        "lookahead": 'subject_id=~"(?=x)x"',
        "too-big-for-re2": 'subject_id=~"' + "a" * (1 << 20) + '"',
        "a-megabyte": 'subject_id=~"' + "(a|b|c)*" * (1 << 17) + '"',
    }
    with notifier.engine.begin() as conn:
        for silence_id, matcher in rows.items():
            conn.execute(
                insert(tables.silences).values(
                    silence_id=silence_id,
                    matchers=json.dumps([matcher]),
                    starts_at=START,
                    ends_at=START + timedelta(days=1),
                    created_by="ops-a",
                    organisation="bank-a",
                    comment="",
                    created_at=START,
                )
            )
    for _ in range(3):
        listed = await api.stub.ListSilences(
            notifier_pb2.ListSilencesRequest(), metadata=api.auth("bank-a"), timeout=60
        )
        assert [s.silence_id for s in listed.silences] == ["a-megabyte"]
    compiled_here = [p for p in compile_calls if f'subject_id=~"{p}"' in rows.values()]
    assert len(compiled_here) == len(set(compiled_here)), "a stored pattern was compiled again"


def test_a_pattern_re2_refuses_is_refused_once_per_process(compile_calls: list[str]) -> None:
    """A stored silence RE2 refuses is read on every pass: refusing its pattern again each time would
    cost as much as compiling it."""
    too_big = uuid.uuid4().hex + "a" * (1 << 20)
    for _ in range(3):
        with pytest.raises(ValueError, match="not a valid RE2"):
            Matcher("subject_id", MatchOp.REGEX, too_big)
    assert compile_calls == [too_big]
