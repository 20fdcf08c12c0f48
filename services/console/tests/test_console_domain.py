"""What the console decides by itself: signed sessions and CSRF tokens, time left and time
zones, and the plot's geometry."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from preflight_common.auth import Principal, Role
from preflight_console.domain import timing
from preflight_console.domain.plot import LABEL_WIDTH, WIDTH, score_plot
from preflight_console.domain.progress import progress
from preflight_console.domain.sessions import SessionStore, Signer

KEY = b"k" * 32
REVIEWER = Principal("reviewer@caisi", Role.REVIEWER, "caisi")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_cookie_is_a_signed_random_id_that_never_carries_the_token() -> None:
    store = SessionStore(Signer(KEY), ttl=60)
    cookie, session = store.create("pft_secret", REVIEWER)
    assert "pft_secret" not in cookie
    assert store.get(cookie) == session
    session_id, _, mac = cookie.partition(".")
    assert store.get(f"{session_id}.{'0' * len(mac)}") is None
    assert store.get(session_id) is None
    assert store.get(None) is None
    # Another key's signature over the same id is refused.
    assert SessionStore(Signer(b"x" * 32), ttl=60).get(cookie) is None


def test_sign_out_and_expiry_end_a_session() -> None:
    clock = Clock()
    store = SessionStore(Signer(KEY), ttl=60, clock=clock)
    ended, _ = store.create("a", REVIEWER)
    kept, _ = store.create("b", REVIEWER)
    store.end(ended)
    assert store.get(ended) is None and store.get(kept) is not None
    clock.now += 60
    assert store.get(kept) is None
    assert len(store) == 0


def test_each_session_has_its_own_csrf_token() -> None:
    signer = Signer(KEY)
    store = SessionStore(signer, ttl=60)
    _, one = store.create("a", REVIEWER)
    _, two = store.create("a", REVIEWER)
    assert one.csrf != two.csrf
    assert signer.verify("csrf", one.session_id, one.csrf)
    assert not signer.verify("csrf", one.session_id, two.csrf)
    assert not signer.verify("session", one.session_id, one.csrf)


def test_a_short_session_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Signer(b"short")


@pytest.mark.parametrize(
    ("left", "band"),
    [
        (timedelta(days=8), "on-track"),
        (timedelta(days=7), "on-track"),
        (timedelta(days=6, hours=23), "under-7-days"),
        (timedelta(days=2, hours=23), "under-3-days"),
        (timedelta(hours=23), "under-1-day"),
        (timedelta(0), "overdue"),
        (timedelta(hours=-1), "overdue"),
    ],
)
def test_time_left_is_banded_under_seven_three_and_one_days(left: timedelta, band: str) -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    assert timing.band(now + left, now) == band


def test_times_are_shown_with_their_zone() -> None:
    moment = datetime(2026, 12, 7, 12, 30, tzinfo=UTC)
    assert timing.show(moment, "UTC") == "2026-12-07 12:30 UTC"
    assert timing.show(moment, "Europe/Paris") == "2026-12-07 13:30 CET"
    assert timing.show(None, "UTC") == "—"
    with pytest.raises(ValueError, match="unknown time zone"):
        timing.show(moment, "Mars/Olympus")
    now = datetime(2026, 12, 7, tzinfo=UTC)
    assert timing.time_left(now + timedelta(days=2, hours=5), now) == "2 d 5 h left"
    assert timing.time_left(now - timedelta(minutes=90), now) == "overdue by 1 h 30 min"


def test_the_plot_places_scores_and_intervals_on_a_zero_to_one_axis() -> None:
    plot = score_plot([("a", 0.5, 0.25, 0.75), ("b", 1.5, -0.2, 1.0)])
    first, second = plot.rows
    assert first.x_low < first.x < first.x_high
    assert second.x == second.x_high == WIDTH - 16 and second.x_low == LABEL_WIDTH
    assert first.y < second.y < plot.axis_y < plot.height
    assert [label for _, label in plot.ticks] == ["0.00", "0.25", "0.50", "0.75", "1.00"]


def test_job_progress_counts_ended_jobs_and_marks_failures() -> None:
    assert (progress(4, 3, 0).text, progress(4, 3, 0).band) == ("3 of 4 ended", "running")
    assert (progress(4, 2, 1).text, progress(4, 2, 1).band) == ("3 of 4 ended, 1 failed", "failures")
    assert (progress(2, 2, 0).text, progress(2, 2, 0).band) == ("2 of 2 ended", "done")
    assert (progress(0, 0, 0).text, progress(0, 0, 0).band) == ("no jobs planned yet", "not-planned")


def test_every_zone_people_pick_is_offered_by_region_after_utc() -> None:
    groups = dict(timing.zone_groups())
    assert timing.zone_groups()[0] == ("", ("UTC",))
    assert "Asia/Kolkata" in groups["Asia"] and "America/Argentina/Buenos_Aires" in groups["America"]
    assert list(groups["Europe"]) == sorted(groups["Europe"])
    offered = {name for names in groups.values() for name in names}
    assert not offered & {"EST5EDT", "US/Pacific", "Etc/GMT+3"}, "legacy aliases are not offered"
    for name in offered:
        timing.zone(name)


def test_sessions_outlive_a_restart_and_still_expire_and_end(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "console" / "sessions.sqlite"
    first = SessionStore(Signer(KEY), ttl=60, path=path, clock=clock)
    kept, session = first.create("pft_secret", REVIEWER, issued_token_id="tok-1")
    first.set_time_zone(session, "Europe/Paris")
    ended, _ = first.create("pft_other", REVIEWER)
    first.close()
    # The file is the owner's alone and does not hold the token in the clear.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"pft_secret" not in path.read_bytes()

    restarted = SessionStore(Signer(KEY), ttl=60, path=path, clock=clock)
    again = restarted.get(kept)
    assert again is not None
    assert (again.token, again.viewer, again.time_zone, again.issued_token_id, again.csrf) == (
        "pft_secret",
        REVIEWER,
        "Europe/Paris",
        "tok-1",
        session.csrf,
    )
    restarted.end(ended)
    assert restarted.get(ended) is None and len(restarted) == 1
    clock.now += 60
    assert restarted.get(kept) is None and len(restarted) == 0
    restarted.close()


def test_a_session_file_under_another_key_opens_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite"
    mine = SessionStore(Signer(KEY), ttl=60, path=path)
    cookie, _ = mine.create("pft_secret", REVIEWER)
    mine.close()
    # Even a cookie signed by the other key names a row whose token that key cannot unseal.
    other_key = Signer(b"x" * 32)
    session_id = cookie.partition(".")[0]
    forged = f"{session_id}.{other_key.sign('session', session_id)}"
    assert SessionStore(other_key, ttl=60, path=path).get(forged) is None
