"""`preflight.notifier.v1.NotifierService`: every read is scoped to what the caller may see.

Authentication happens before a handler runs (`preflight_common.grpcserver`);
the handler maps the principal to a `Viewer` and asks `may_see` for every
alert it returns or streams. An alert the caller may not see is reported as
NOT_FOUND, never as PERMISSION_DENIED, so its existence does not leak.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import grpc
from preflight.notifier.v1 import events_pb2 as notifier_events
from preflight.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from preflight_common.auth import Principal, Role, current_principal
from preflight_common.clock import Clock
from preflight_common.fields import InvalidArgument, timestamp, timestamp_field
from preflight_common.grpcserver import invalid_argument
from preflight_common.pagetokens import page_tokens
from sqlalchemy import Engine

from preflight_notifier.adapters import store
from preflight_notifier.adapters.codec import alert_to_proto, kind_from_proto
from preflight_notifier.domain.alerts import Alert
from preflight_notifier.domain.audience import Viewer, ViewerRole, may_see
from preflight_notifier.domain.matchers import Matcher, MatchOp
from preflight_notifier.domain.silences import Silence, SilenceState, may_manage, silence_scope

DEFAULT_PAGE = 100
MAX_PAGE = 500
MAX_COMMENT = 1000
MAX_MATCHERS = 50
MATCHER_COMPILE_DEADLINE = 5.0
"""Seconds a silence's matchers may take to compile (off the event loop) before it is refused."""
_ALERTS_SCOPE = "preflight.notifier.v1.NotifierService/ListAlerts"
# A page stops after reading this many alerts even if few were visible (the token resumes there).
MAX_SCAN = 5000
# Stream re-reads this many recent sequence numbers, so an alert whose transaction committed after
# a later-numbered one (concurrent writers on PostgreSQL) is still delivered.
STREAM_LOOKBACK = 1000
STREAM_BATCH = 200

_ROLES = {Role.LAB: ViewerRole.LAB, Role.REVIEWER: ViewerRole.REVIEWER, Role.OPERATOR: ViewerRole.OPERATOR}
_OPS = {
    notifier_pb2.MATCH_OPERATOR_EQUAL: MatchOp.EQUAL,
    notifier_pb2.MATCH_OPERATOR_NOT_EQUAL: MatchOp.NOT_EQUAL,
    notifier_pb2.MATCH_OPERATOR_REGEX: MatchOp.REGEX,
    notifier_pb2.MATCH_OPERATOR_NOT_REGEX: MatchOp.NOT_REGEX,
}
_SILENCE_STATES = {
    SilenceState.PENDING: notifier_pb2.SILENCE_STATE_PENDING,
    SilenceState.ACTIVE: notifier_pb2.SILENCE_STATE_ACTIVE,
    SilenceState.EXPIRED: notifier_pb2.SILENCE_STATE_EXPIRED,
}


def viewer_of(principal: Principal) -> Viewer:
    """The viewer a principal is: admins and services see no alerts."""
    return Viewer(_ROLES.get(principal.role, ViewerRole.OTHER), principal.organisation, principal.sectors)


def _visible(viewer: Viewer, alert: Alert) -> bool:
    return may_see(viewer, alert.kind, alert.audience, alert.tlp)


def _matchers_of(request: notifier_pb2.CreateSilenceRequest) -> tuple[list[Matcher], list[tuple[str, str]]]:
    """The request's matchers, compiled (CPU work: run it off the event loop), and the violations."""
    violations: list[tuple[str, str]] = []
    matchers: list[Matcher] = []
    if not request.matchers:
        violations.append(("matchers", "at least one matcher is required"))
    if len(request.matchers) > MAX_MATCHERS:
        return matchers, [("matchers", f"at most {MAX_MATCHERS} matchers")]
    for index, m in enumerate(request.matchers):
        if m.operator not in _OPS:
            violations.append((f"matchers[{index}].operator", "required"))
            continue
        try:
            matchers.append(Matcher(m.label, _OPS[m.operator], m.value))
        except ValueError as exc:
            violations.append((f"matchers[{index}]", str(exc)))
    return matchers, violations


class NotifierServicer(notifier_pb2_grpc.NotifierServiceServicer):
    """The gRPC API over the notifier's store."""

    def __init__(self, engine: Engine, clock: Clock, *, stream_poll_interval: float = 0.5) -> None:
        self._engine = engine
        self._clock = clock
        self._poll = stream_poll_interval

    # --- alerts ------------------------------------------------------------------------------

    def _records(self, viewer: Viewer, rows: Sequence[tuple[int, Alert]]) -> list[notifier_pb2.AlertRecord]:
        with store.reading(self._engine) as stored:
            acks = stored.acknowledgements([a.alert_id for _, a in rows], viewer.organisation)
        records = []
        for sequence, alert in rows:
            record = notifier_pb2.AlertRecord(alert=alert_to_proto(alert.seen_by(viewer)), sequence=sequence)
            if alert.alert_id in acks:
                at, by = acks[alert.alert_id]
                record.acknowledged = True
                record.acknowledged_at.CopyFrom(timestamp(at))
                record.acknowledged_by = by
            records.append(record)
        return records

    def _list(
        self, viewer: Viewer, request: notifier_pb2.ListAlertsRequest, page_size: int, before: int | None
    ) -> notifier_pb2.ListAlertsResponse:
        kinds = [kind_from_proto(request.kind).value] if request.kind else []
        found: list[tuple[int, Alert]] = []
        scanned = 0
        cursor = before
        exhausted = False
        while len(found) < page_size and scanned < MAX_SCAN:
            with store.reading(self._engine) as stored:
                rows = stored.alerts_page(
                    before=cursor, limit=page_size * 2, kinds=kinds, subject_id=request.subject_id
                )
            if not rows:
                exhausted = True
                break
            scanned += len(rows)
            for sequence, alert in rows:
                cursor = sequence
                if _visible(viewer, alert):
                    found.append((sequence, alert))
                    if len(found) == page_size:
                        break
        records = self._records(viewer, found)
        if request.unacknowledged_only:
            records = [r for r in records if not r.acknowledged]
        token = page_tokens().encode(_ALERTS_SCOPE, None if exhausted or cursor is None else [cursor])
        return notifier_pb2.ListAlertsResponse(alerts=records, next_page_token=token)

    async def ListAlerts(
        self, request: notifier_pb2.ListAlertsRequest, context: grpc.aio.ServicerContext
    ) -> notifier_pb2.ListAlertsResponse:
        violations = []
        if not 0 <= request.page_size <= MAX_PAGE:
            violations.append(("page_size", f"must be between 0 and {MAX_PAGE}"))
        before = None
        try:
            cursor = page_tokens().decode(_ALERTS_SCOPE, request.page_token)
            before = int(cursor[0]) if cursor else None
        except InvalidArgument as exc:
            violations += exc.violations
        if request.kind and request.kind not in notifier_events.AlertKind.values():
            violations.append(("kind", "unknown alert kind"))
        if violations:
            await invalid_argument(context, violations)
        viewer = viewer_of(current_principal())
        return await asyncio.to_thread(self._list, viewer, request, request.page_size or DEFAULT_PAGE, before)

    def _acknowledge(
        self, viewer: Viewer, principal_id: str, alert_id: str, comment: str
    ) -> notifier_pb2.AlertRecord | None:
        with store.write_transaction(self._engine) as stored:
            alert = stored.alerts_by_id([alert_id]).get(alert_id)
            sequence = stored.sequence_of(alert_id)
            if alert is None or sequence is None or not _visible(viewer, alert):
                return None
            stored.acknowledge(alert_id, principal_id, viewer.organisation, comment, self._clock())
        return self._records(viewer, [(sequence, alert)])[0]

    async def AcknowledgeAlert(
        self, request: notifier_pb2.AcknowledgeAlertRequest, context: grpc.aio.ServicerContext
    ) -> notifier_pb2.AcknowledgeAlertResponse:
        violations = []
        if not request.alert_id:
            violations.append(("alert_id", "required"))
        if len(request.comment) > MAX_COMMENT:
            violations.append(("comment", f"at most {MAX_COMMENT} characters"))
        if violations:
            await invalid_argument(context, violations)
        principal = current_principal()
        record = await asyncio.to_thread(
            self._acknowledge, viewer_of(principal), principal.principal_id, request.alert_id, request.comment
        )
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "alert_id: no such alert")
        return notifier_pb2.AcknowledgeAlertResponse(alert=record)

    async def SubscribeAlerts(
        self, request: notifier_pb2.SubscribeAlertsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[notifier_pb2.SubscribeAlertsResponse]:
        if any(k not in notifier_events.AlertKind.values() or not k for k in request.kinds):
            await invalid_argument(context, [("kinds", "unknown or unspecified alert kind")])
        if request.HasField("after_sequence") and request.after_sequence < 0:
            await invalid_argument(context, [("after_sequence", "must not be negative")])
        viewer = viewer_of(current_principal())
        kinds = [kind_from_proto(k).value for k in request.kinds]
        start = request.after_sequence if request.HasField("after_sequence") else None
        if start is None:
            start = await asyncio.to_thread(self._last_sequence)
        seen: set[int] = set()
        cursor = start
        while True:
            fresh = await asyncio.to_thread(self._unseen, max(start, cursor - STREAM_LOOKBACK), seen)
            seen.update(fresh)
            cursor = max([cursor, *fresh])
            seen = {s for s in seen if s > cursor - STREAM_LOOKBACK}
            rows = await asyncio.to_thread(self._alerts_at, fresh, kinds)
            visible = [(s, a) for s, a in rows if _visible(viewer, a)]
            for record in await asyncio.to_thread(self._records, viewer, visible):
                yield notifier_pb2.SubscribeAlertsResponse(alert=record)
            if not fresh:
                await asyncio.sleep(self._poll)

    def _last_sequence(self) -> int:
        with store.reading(self._engine) as stored:
            return stored.last_sequence()

    def _unseen(self, after: int, seen: set[int]) -> list[int]:
        with store.reading(self._engine) as stored:
            recent = stored.sequences_after(after, STREAM_LOOKBACK + STREAM_BATCH)
        return [s for s in recent if s not in seen][:STREAM_BATCH]

    def _alerts_at(self, sequences: list[int], kinds: list[str]) -> list[tuple[int, Alert]]:
        with store.reading(self._engine) as stored:
            return stored.alerts_at(sequences, kinds)

    # --- silences ----------------------------------------------------------------------------

    def _silence_message(self, silence: Silence, now: datetime) -> notifier_pb2.Silence:
        return notifier_pb2.Silence(
            silence_id=silence.silence_id,
            matchers=[
                notifier_pb2.Matcher(
                    label=m.label, operator=next(k for k, v in _OPS.items() if v is m.op), value=m.value
                )
                for m in silence.matchers
            ],
            starts_at=timestamp(silence.starts_at),
            ends_at=timestamp(silence.ends_at),
            created_by=silence.created_by,
            organisation=silence.organisation,
            comment=silence.comment,
            state=_SILENCE_STATES[silence.state(now)],
            created_at=timestamp(silence.created_at),
        )

    async def CreateSilence(
        self, request: notifier_pb2.CreateSilenceRequest, context: grpc.aio.ServicerContext
    ) -> notifier_pb2.CreateSilenceResponse:
        principal = current_principal()
        scope = silence_scope(viewer_of(principal))
        if scope is None:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "only reviewers, labs and operators silence alerts"
            )
        assert scope is not None
        now = self._clock()
        try:
            matchers, violations = await asyncio.wait_for(
                asyncio.to_thread(_matchers_of, request), MATCHER_COMPILE_DEADLINE
            )
        except TimeoutError:
            await invalid_argument(context, [("matchers", "too costly to compile")])
        starts = timestamp_field(request, "starts_at") or now
        ends = timestamp_field(request, "ends_at")
        if ends is None:
            violations.append(("ends_at", "required"))
        elif ends <= max(starts, now):
            violations.append(("ends_at", "must be after starts_at and in the future"))
        if len(request.comment) > MAX_COMMENT:
            violations.append(("comment", f"at most {MAX_COMMENT} characters"))
        if violations:
            await invalid_argument(context, violations)
        assert ends is not None
        silence = Silence(
            silence_id=str(uuid.uuid4()),
            matchers=tuple(matchers),
            starts_at=starts,
            ends_at=ends,
            created_by=principal.principal_id,
            organisation=scope,
            comment=request.comment,
            created_at=now,
        )
        await asyncio.to_thread(self._insert_silence, silence)
        return notifier_pb2.CreateSilenceResponse(silence=self._silence_message(silence, now))

    def _insert_silence(self, silence: Silence) -> None:
        with store.write_transaction(self._engine) as stored:
            stored.insert_silence(silence)

    async def ListSilences(
        self, request: notifier_pb2.ListSilencesRequest, context: grpc.aio.ServicerContext
    ) -> notifier_pb2.ListSilencesResponse:
        scope = silence_scope(viewer_of(current_principal()))
        if scope is None:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "only reviewers, labs and operators have silences"
            )
        now = self._clock()

        def read() -> list[Silence]:
            with store.reading(self._engine) as stored:
                return stored.silences(
                    organisation=scope or None, unexpired_at=None if request.include_expired else now
                )

        found = await asyncio.to_thread(read)
        return notifier_pb2.ListSilencesResponse(silences=[self._silence_message(s, now) for s in found])

    def _expire(self, viewer: Viewer, silence_id: str) -> tuple[Silence, datetime] | None:
        now = self._clock()
        with store.write_transaction(self._engine) as stored:
            silence = stored.load_silence(silence_id)
            if silence is None or not may_manage(viewer, silence):
                return None
            if silence.state(now) is not SilenceState.EXPIRED:
                stored.end_silence(silence, now)
            return stored.load_silence(silence_id) or silence, now

    async def ExpireSilence(
        self, request: notifier_pb2.ExpireSilenceRequest, context: grpc.aio.ServicerContext
    ) -> notifier_pb2.ExpireSilenceResponse:
        if not request.silence_id:
            await invalid_argument(context, [("silence_id", "required")])
        expired = await asyncio.to_thread(self._expire, viewer_of(current_principal()), request.silence_id)
        if expired is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "silence_id: no such silence")
        assert expired is not None
        return notifier_pb2.ExpireSilenceResponse(silence=self._silence_message(*expired))
