"""Evaluation-log pages are the reviewers' alone: another role is refused before any service is
asked, and a log index that cannot be one is not found. (What the benchmark service then allows is
tested with the service, and in the browser on the embedded stack.)"""

from __future__ import annotations

import pytest
from preflight_common.auth import Principal, Role
from preflight_testkit.console import SignedIn

LAB = Principal("lab@lab-a", Role.LAB, "lab-a")
OPERATOR = Principal("ops@hospital", Role.OPERATOR, "hospital")
REVIEWER = Principal("rita@agency", Role.REVIEWER, "agency")
PAGES = ("/review/jobs/bj-1/logs/0", "/review/jobs/bj-1/logs/0/download")


def test_only_reviewers_reach_evaluation_logs(signed_in: SignedIn) -> None:
    for viewer in (LAB, OPERATOR):
        with signed_in(viewer) as (client, _):
            for path in PAGES:
                answer = client.get(path)
                # Refused by role: no service was asked (none listens; asking would answer 502).
                assert answer.status_code == 403, (viewer.role, path, answer.status_code)


def test_a_log_index_that_is_no_number_is_not_found(signed_in: SignedIn) -> None:
    with signed_in(REVIEWER) as (client, _):
        for index in ("-1", "x", "99999", "0x1"):
            assert client.get(f"/review/jobs/bj-1/logs/{index}").status_code == 404, index
            assert client.get(f"/review/jobs/bj-1/logs/{index}/download").status_code == 404, index
        # A plausible index goes to the benchmark service, which is not there.
        assert client.get("/review/jobs/bj-1/logs/0").status_code == 502


def test_inspects_viewer_is_served_under_its_own_policy_and_nowhere_else(signed_in: SignedIn) -> None:
    viewer = "/review/jobs/bj-1/logs/0/viewer"
    with signed_in(REVIEWER) as (client, _):
        page = client.get(f"{viewer}/index.html")
        assert page.status_code == 200 and "<html" in page.text
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and policy.endswith("frame-ancestors 'none'")
        script = client.get(f"{viewer}/assets/index.js")
        assert script.headers["content-security-policy"] == policy
        # Every other page keeps the console's own policy, under which no script runs.
        assert "script-src" not in client.get("/settings").headers["content-security-policy"]
        for path in ("../../../settings", "assets/../../x", "assets/none.js"):
            assert client.get(f"{viewer}/{path}").status_code == 404, path
    with signed_in(LAB) as (client, _):
        assert client.get(f"{viewer}/index.html").status_code == 403


@pytest.mark.slow  # the last range waits out the SDK's retries of the absent benchmark service (~10 s)
def test_the_viewers_log_is_read_by_byte_ranges_only(signed_in: SignedIn) -> None:
    log = "/review/jobs/bj-1/logs/0/viewer/logs/log.eval"
    with signed_in(REVIEWER) as (client, _):
        for asked in ("bytes=5-2", "bytes=-10", "items=0-1", "bytes=0-1,4-5"):
            # Refused before the benchmark service (which is not there) is asked.
            assert client.get(log, headers={"range": asked}).status_code == 416, asked
        assert client.get(log, headers={"range": "bytes=0-9"}).status_code == 502
