"""The review console on the embedded stack: a real server on loopback, real headless Chromium.

Over plain HTTP: every role requesting every other role's pages and actions by URL is answered
403 or 404 and changes nothing; a form posted without this session's CSRF token is refused.
In the browser: a reviewer signs in, finds the submission in the queue, opens its report and
signs it off, then triages a candidate finding and shares it with the healthcare sector; the
hospital operator sees it without the lab's identity and downloads its CSAF, the water utility
does not see it; a lab sees only its own submissions. Every page visited is checked with
axe-core against WCAG 2.2 AA and saved as a screenshot under the test's tmp folder.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from preflight.identity.v1 import identity_pb2
from preflight.sdk import Client, Preflight
from preflight_testkit.axe import wcag_violations
from preflight_testkit.stack import (
    RunningStack,
    start_stack,
    submission_request,
    wait_report_ready,
    wait_until,
)

pytestmark = pytest.mark.slow

CATALOG = Path(__file__).parent / "data" / "catalog_console.yaml"
OTHER_LAB = "other-lab"


@dataclass(frozen=True)
class Review:
    """The stack with one finished submission of example-lab and one open one of another lab."""

    stack: RunningStack
    submission_id: str
    report_id: str
    finding_id: str
    other_submission_id: str
    job_id: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.stack.ports['console']}"


def _reviewer(stack: RunningStack) -> Preflight:
    targets = {name: stack.target(name) for name in ("clearinghouse", "benchmark")}
    return Preflight(targets=targets, token=stack.tokens["reviewer"])


def _other_lab_token(stack: RunningStack) -> str:
    with Client(stack.target("intake"), token=stack.tokens["admin"]) as admin:
        created = admin.create_token(
            principal_id=f"lab@{OTHER_LAB}", role=identity_pb2.ROLE_LAB, organisation=OTHER_LAB
        )
    return str(created.token)


def _other_lab_request(stack: RunningStack) -> Any:
    request = submission_request(stack)
    request.model.developer = OTHER_LAB
    return request


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Review]:
    stack = start_stack(
        tmp_path_factory.mktemp("console-stack"),
        {
            "PREFLIGHT_BENCHMARK_CATALOG_FILE": str(CATALOG),
            "PREFLIGHT_STACK_PASS_ENV": "PREFLIGHT_BENCHMARK_CATALOG_FILE",
        },
    )
    try:
        with Client(stack.target("intake"), token=stack.tokens["lab"]) as lab:
            sid = lab.submit(submission_request(stack, release_days=2)).submission.submission_id
            wait_report_ready(stack, lab, [sid], timeout=600)
        with Client(stack.target("intake"), token=_other_lab_token(stack)) as other:
            other_sid = other.submit(_other_lab_request(stack)).submission.submission_id
        with _reviewer(stack) as reviewer:
            report = reviewer.clearinghouse.get_report(submission_id=sid)
            findings = wait_until(
                "candidate findings of the discovery suite",
                lambda: [f for f in reviewer.clearinghouse.iter_findings() if f.source.submission_id == sid],
                timeout=120,
            )
            (job,) = [
                j for j in reviewer.benchmark.iter_jobs(submission_id=sid) if j.suite_id == "cyber.knowledge"
            ]
        yield Review(stack, sid, report.report_id, findings[0].finding_id, other_sid, job.job_id)
    finally:
        stack.stack_command("down")


def _snapshot(review: Review) -> tuple[Any, ...]:
    """What the console's actions could change: the report's version, sign-offs and notes, the
    finding (its assessment and operators' patch statuses among it)."""
    with _reviewer(review.stack) as reviewer:
        report = reviewer.clearinghouse.get_report(submission_id=review.submission_id)
        finding = reviewer.clearinghouse.get_finding(review.finding_id)
    return (
        report.version,
        len(report.sign_offs),
        len(report.notes),
        finding.revision,
        finding.state,
        finding.tlp,
        finding.cvss_v3_vector,
        len(finding.patch_statuses),
    )


# -- over HTTP ---------------------------------------------------------------------------------


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


@contextlib.contextmanager
def _signed_in(review: Review, principal: str) -> Iterator[tuple[httpx.Client, str]]:
    """An HTTP client signed in as the stack's `principal`, and its session's CSRF token."""
    with httpx.Client(base_url=review.base, follow_redirects=False, timeout=60) as client:
        form = client.get("/sign-in")
        answer = client.post(
            "/sign-in",
            data={"csrf": _csrf(form.text), "token": review.stack.tokens[principal]},
            headers={"origin": review.base},
        )
        assert answer.status_code == 303, answer.text
        home = client.get(answer.headers["location"])
        assert home.status_code == 200, home.text
        yield client, _csrf(home.text)


def _routes(review: Review, revision: int) -> dict[str, list[tuple[str, str, dict[str, str]]]]:
    """Every page (GET) and action (POST, with its form) of each role, on real ids."""
    sid, rid, fid, jid = review.submission_id, review.report_id, review.finding_id, review.job_id
    return {
        "reviewer": [
            ("GET", "/review/queue", {}),
            ("GET", f"/review/jobs/{jid}/logs/0", {}),
            ("GET", f"/review/jobs/{jid}/logs/0/download", {}),
            ("GET", f"/review/jobs/{jid}/logs/0/viewer/index.html", {}),
            ("GET", f"/review/jobs/{jid}/logs/0/viewer/logs/log.eval", {}),
            ("GET", f"/review/submissions/{sid}", {}),
            ("GET", f"/review/submissions/{sid}/report", {}),
            ("GET", "/review/findings", {}),
            ("GET", f"/review/findings/{fid}", {}),
            ("POST", f"/review/reports/{rid}/sign-off", {"comment": "not mine", "submission_id": sid}),
            ("POST", f"/review/reports/{rid}/notes", {"text": "not mine", "submission_id": sid}),
            ("POST", f"/review/submissions/{sid}/reissue", {"reason": "not mine"}),
            ("GET", "/review/audit", {}),
            (
                "POST",
                f"/review/findings/{fid}/assessment",
                {"cvss_v3_vector": V31_CRITICAL, "reason": "not mine", "revision": str(revision)},
            ),
            ("POST", f"/review/findings/{fid}/transition", {"target": "TRIAGED", "revision": str(revision)}),
            (
                "POST",
                f"/review/findings/{fid}/sharing",
                {"tlp": "CLEAR", "sectors": "water", "confirm": "yes", "revision": str(revision)},
            ),
        ],
        "operator": [
            ("GET", "/operator/findings", {}),
            ("GET", f"/operator/findings/{fid}", {}),
            ("GET", f"/operator/findings/{fid}/export/csaf", {}),
            ("POST", f"/operator/findings/{fid}/patch-status", {"status": "PATCHED", "note": "not mine"}),
            ("GET", "/operator/alerts", {}),
            ("POST", "/operator/alerts/any-alert/acknowledge", {"comment": "not mine"}),
        ],
        "lab": [("GET", "/lab/submissions", {}), ("GET", f"/lab/submissions/{sid}/report", {})],
    }


ROLE_OF = {"reviewer": "reviewer", "operator_hospital": "operator", "lab": "lab"}
V31_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


def test_every_role_is_refused_every_other_roles_pages_and_actions(review: Review) -> None:
    before = _snapshot(review)
    routes = _routes(review, revision=before[3])
    for principal, role in ROLE_OF.items():
        with _signed_in(review, principal) as (client, csrf):
            for owner, owned in routes.items():
                if owner == role:
                    continue
                for method, path, form in owned:
                    if method == "GET":
                        answer = client.get(path)
                    else:
                        answer = client.post(
                            path, data={**form, "csrf": csrf}, headers={"origin": review.base}
                        )
                    assert answer.status_code in (403, 404), (
                        f"{principal} {method} {path}: {answer.status_code}"
                    )
    assert _snapshot(review) == before


def test_the_admin_and_an_unknown_token_cannot_sign_in(review: Review) -> None:
    with httpx.Client(base_url=review.base, timeout=60) as client:
        for token in (review.stack.tokens["admin"], "pft_not-a-token"):
            form = client.get("/sign-in")
            answer = client.post(
                "/sign-in", data={"csrf": _csrf(form.text), "token": token}, headers={"origin": review.base}
            )
            assert answer.status_code == 401
            assert "preflight_console_session" not in answer.headers.get("set-cookie", "")


def test_a_form_without_this_sessions_csrf_token_is_refused(review: Review) -> None:
    before = _snapshot(review)
    sign_off = f"/review/reports/{review.report_id}/sign-off"
    form = {"comment": "forged", "submission_id": review.submission_id}
    with _signed_in(review, "reviewer") as (client, csrf), _signed_in(review, "reviewer") as (_, other_csrf):
        assert other_csrf != csrf
        for token in (None, "", "0" * 64, other_csrf, csrf[:-1] + ("0" if csrf[-1] != "0" else "1")):
            data = form if token is None else {**form, "csrf": token}
            answer = client.post(sign_off, data=data, headers={"origin": review.base})
            assert answer.status_code == 403, token
        # The right token from a page of another site.
        answer = client.post(
            sign_off, data={**form, "csrf": csrf}, headers={"origin": "https://evil.example"}
        )
        assert answer.status_code == 403
        # No session at all.
        with httpx.Client(base_url=review.base, timeout=60) as anonymous:
            assert anonymous.post(sign_off, data={**form, "csrf": csrf}).status_code == 403
            # Signing in needs the sign-in form's token too.
            answer = anonymous.post("/sign-in", data={"token": review.stack.tokens["reviewer"]})
            assert answer.status_code == 403
    assert _snapshot(review) == before


def test_what_an_api_refuses_is_answered_with_its_status_naming_the_field(review: Review) -> None:
    before = _snapshot(review)
    assessment = f"/review/findings/{review.finding_id}/assessment"
    with _signed_in(review, "reviewer") as (client, csrf):
        answer = client.post(
            assessment,
            data={"csrf": csrf, "cvss_v3_vector": "AV:N/AC:L", "revision": str(before[3])},
            headers={"origin": review.base},
        )
        assert answer.status_code == 400
        assert "cvss_v3_vector: must be a CVSS 3.1 vector" in answer.text
        # A finding changed since the page was read.
        answer = client.post(
            assessment,
            data={"csrf": csrf, "cvss_v3_vector": V31_CRITICAL, "revision": str(before[3] + 1000)},
            headers={"origin": review.base},
        )
        assert answer.status_code == 409
    assert _snapshot(review) == before


def test_sessions_are_httponly_strict_cookies_that_sign_out_ends(review: Review) -> None:
    client = httpx.Client(base_url=review.base, follow_redirects=False, timeout=60)
    with client:
        page = client.get("/sign-in")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "same-origin"
        answer = client.post(
            "/sign-in",
            data={"csrf": _csrf(page.text), "token": review.stack.tokens["lab"]},
            headers={"origin": review.base},
        )
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("preflight_console_session=")
        )
        assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        assert review.stack.tokens["lab"] not in cookie
        session = client.cookies["preflight_console_session"]
        home = client.get("/lab/submissions")
        assert home.status_code == 200
        assert client.post("/sign-out", data={"csrf": _csrf(home.text)}).status_code == 303
        # The old cookie names an ended session, even when the browser keeps sending it.
        client.cookies.set("preflight_console_session", session)
        assert client.get("/lab/submissions").status_code == 303


def test_times_follow_the_chosen_zone_and_the_zone_form_redirects_only_here(review: Review) -> None:
    with _signed_in(review, "lab") as (client, csrf):
        assert " UTC</td>" in client.get("/lab/submissions").text
        for back, location in [
            ("/lab/submissions", "/lab/submissions"),
            ("//evil.example/x", "/"),
            ("/\\evil.example", "/"),
            ("https://evil.example", "/"),
        ]:
            answer = client.post(
                "/time-zone",
                data={"csrf": csrf, "zone": "Europe/Paris", "back": back},
                headers={"origin": review.base},
            )
            assert (answer.status_code, answer.headers["location"]) == (303, location), back
        page = client.get("/lab/submissions").text
        assert " CET</td>" in page and " UTC</td>" not in page
        answer = client.post(
            "/time-zone", data={"csrf": csrf, "zone": "Mars/Olympus"}, headers={"origin": review.base}
        )
        assert answer.status_code == 400


# -- in the browser ----------------------------------------------------------------------------


class Browser:
    """Headless Chromium on the console: every page visited is checked with axe-core and saved."""

    def __init__(self, base: str, artifacts: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.base = base
        self.artifacts = artifacts
        self.downloads = artifacts / "downloads"
        self.downloads.mkdir(parents=True, exist_ok=True)
        self.shots = 0
        options = webdriver.ChromeOptions()
        options.binary_location = str(shutil.which("chromium"))
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ):
            options.add_argument(argument)
        options.add_experimental_option(
            "prefs",
            {"download.default_directory": str(self.downloads), "download.prompt_for_download": False},
        )
        self.driver = webdriver.Chrome(options=options, service=Service(str(shutil.which("chromedriver"))))
        self.driver.set_script_timeout(120)
        # A command chromedriver never answers fails the test instead of holding the run: past
        # the 300 s page-load timeout, nothing is still working.
        self.driver.command_executor.client_config.timeout = 330
        self.driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(self.downloads)}
        )

    def close(self) -> None:
        self.driver.quit()

    def downloaded(self, what: str, suffix: str) -> Path:
        """The first file ending in `suffix` downloaded, once there is one (Chromium names a
        download in progress otherwise)."""
        found: list[Path] = wait_until(
            what, lambda: [p for p in self.downloads.iterdir() if p.suffix == suffix], timeout=30
        )
        return found[0]

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def text(self) -> str:
        return self.read("main")

    def read(self, selector: str, timeout: float = 30) -> str:
        """The text of the element `selector` selects, once there is one: while a navigation is
        replacing the page the element may be missing, or go stale between finding and reading
        (which Chromium may also report as a node that no longer belongs to the document)."""
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
            WebDriverException,
        )
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        def attempt(driver: Any) -> tuple[str] | None:
            try:
                return (str(driver.find_element(By.CSS_SELECTOR, selector).text),)
            except (NoSuchElementException, StaleElementReferenceException):
                raise
            except WebDriverException as exc:
                if "does not belong to the document" in str(exc.msg):
                    return None
                raise

        waiting = WebDriverWait(
            self.driver,
            timeout,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )
        return waiting.until(attempt)[0]

    def check(self, name: str) -> None:
        """Save a screenshot of the page, then fail on any WCAG 2.2 AA violation axe-core finds."""
        self.shots += 1
        self.driver.save_screenshot(str(self.artifacts / f"{self.shots:02d}-{name}.png"))
        violations = wcag_violations(self.driver)
        assert not violations, f"{name} ({self.driver.current_url}): {violations}"

    def sign_in(self, token: str) -> None:
        self.open("/sign-in")
        self.check("sign-in")
        self.css("#token").send_keys(token)
        self.css("main form button[type=submit]").click()
        wait_until("signed in", lambda: not self.driver.current_url.endswith("/sign-in"), timeout=30)

    def sign_out(self) -> None:
        self.css("header form[action='/sign-out'] button").click()
        wait_until("the sign-in page", lambda: self.driver.current_url.endswith("/sign-in"), timeout=30)


@pytest.fixture
def browser(review: Review, tmp_path: Path) -> Iterator[Browser]:
    opened = Browser(review.base, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


def _choose(browser: Browser, selector: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(browser.css(selector)).select_by_value(value)


def test_a_reviewer_signs_off_and_shares_a_finding_the_hospital_sees_and_downloads(
    review: Review, browser: Browser
) -> None:
    sid, fid = review.submission_id, review.finding_id
    tokens = review.stack.tokens
    browser.sign_in(tokens["reviewer"])
    wait_until("the queue", lambda: browser.driver.current_url.endswith("/review/queue"), timeout=30)
    browser.check("queue")
    row = browser.css(f"a[href='/review/submissions/{sid}']").find_element("xpath", "ancestor::tr")
    assert "under-3-days" in row.find_element("css selector", ".band").get_attribute("class")
    # Both suites of the catalog ended, as the benchmark counted them for the whole queue at once.
    assert row.find_element("css selector", ".jobs").text == "2 of 2 ended"
    browser.driver.set_window_size(820, 1180)
    browser.check("queue-tablet")
    browser.driver.set_window_size(1280, 900)

    browser.css(f"a[href='/review/submissions/{sid}']").click()
    browser.check("submission")
    assert "cyber.knowledge" in browser.text() and "UTC" in browser.text()
    # The knowledge suite's evaluation log, read by the benchmark service for this reviewer.
    browser.css(f"a[href='/review/jobs/{review.job_id}/logs/0']").click()
    browser.check("eval-log")
    assert browser.read("h1").startswith("Evaluation log") and "success" in browser.text()
    assert len(browser.all("#samples tbody tr")) == 3, "the catalog runs three samples of the suite"
    browser.css("#download-log").click()
    log = browser.downloaded("the eval log download", ".eval")
    with _reviewer(review.stack) as reviewer:
        assert log.read_bytes() == b"".join(c.data for c in reviewer.benchmark.read_eval_log(review.job_id))
    # Inspect's own viewer, served by the console, reads the same log by ranges through it. (A
    # screenshot, no axe-core: the viewer's markup is Inspect's.)
    sample = browser.css("#samples tbody td").text
    browser.css("#open-viewer").click()
    wait_until("the viewer showing the log's samples", lambda: sample in browser.read("body"), timeout=60)
    browser.shots += 1
    browser.driver.save_screenshot(str(browser.artifacts / f"{browser.shots:02d}-inspect-viewer.png"))
    browser.open(f"/review/submissions/{sid}")
    browser.css(f"a[href='/review/submissions/{sid}/report']").click()
    browser.check("report")
    assert "verifies" in browser.text()
    assert browser.all("svg.plot circle.score"), "the scores are plotted"
    assert "security_knowledge" in browser.css("main table").text
    browser.css("#comment").send_keys("Scores match the logs.")
    browser.css("#sign-off").click()
    wait_until("the sign-off on the report", lambda: "Scores match the logs." in browser.text(), timeout=30)
    browser.check("report-signed-off")

    browser.open("/review/findings")
    browser.check("findings")
    browser.css(f"a[href='/review/findings/{fid}']").click()
    browser.check("finding")
    browser.css("#cvss-v3").clear()
    browser.css("#cvss-v3").send_keys(V31_CRITICAL)
    browser.css("#assess").click()
    # The server scores the vector: 9.8 for this one.
    wait_until("the scored vector", lambda: f"{V31_CRITICAL} (9.8)" in browser.text(), timeout=30)
    _choose(browser, "#tlp", "AMBER")
    browser.css("#sector-healthcare").click()
    browser.css("#preview-sharing").click()
    wait_until("the sharing preview", lambda: browser.driver.current_url.endswith(f"/{fid}/sharing"), 30)
    browser.check("sharing-preview")
    reached = browser.css("#reached").text
    assert "st-mary-hospital" in reached and "valley-water" not in reached
    browser.css("#confirm-sharing").click()
    wait_until("the finding again", lambda: browser.driver.current_url.endswith(f"/findings/{fid}"), 30)
    for state in ("TRIAGED", "VALIDATED"):
        _choose(browser, "#target", state)
        browser.css("#transition").click()
        wait_until(f"the finding {state}", lambda s=state: s.lower() in browser.text(), timeout=30)
    browser.check("finding-validated")
    browser.sign_out()

    browser.sign_in(tokens["operator_hospital"])
    wait_until("the shared findings", lambda: browser.driver.current_url.endswith("/operator/findings"), 30)
    browser.check("operator-findings")
    browser.css(f"a[href='/operator/findings/{fid}']").click()
    browser.check("operator-finding")
    assert "withheld" in browser.text() and "example-lab" not in browser.text()
    _choose(browser, "#patch-status", "PATCHED")
    browser.css("#patch-note").send_keys("Rolled out on every ward.")
    browser.css("#set-patch-status").click()
    wait_until("the patch status", lambda: "Rolled out on every ward." in browser.text(), timeout=30)
    browser.check("operator-finding-patched")
    browser.css("#export-csaf").click()
    document = browser.downloaded("the CSAF download", ".json")
    csaf = json.loads(document.read_text())
    assert csaf["document"]["category"] == "csaf_security_advisory"
    assert csaf["document"]["distribution"]["tlp"]["label"] == "AMBER"
    assert "example-lab" not in document.read_text()
    # Finding alerts fire at deadlines (embargo end, remediation due), none of which passes here:
    # the page shows the notifier's (empty) answer for this operator.
    browser.css("a[href='/operator/alerts']").click()
    browser.check("operator-alerts")
    assert browser.css("h1").text == "Alerts" and browser.all("#alerts")
    browser.sign_out()

    browser.sign_in(tokens["operator_utility"])
    wait_until("the shared findings", lambda: browser.driver.current_url.endswith("/operator/findings"), 30)
    browser.check("utility-findings")
    assert not browser.all(f"a[href='/operator/findings/{fid}']")
    browser.open(f"/operator/findings/{fid}")
    assert "Not possible" in browser.css("h1").text


def test_a_lab_sees_only_its_own_submissions_and_reports(review: Review, browser: Browser) -> None:
    browser.sign_in(review.stack.tokens["lab"])
    wait_until("the lab's submissions", lambda: browser.driver.current_url.endswith("/lab/submissions"), 30)
    browser.check("lab-submissions")
    assert browser.all(f"a[href='/lab/submissions/{review.submission_id}/report']")
    assert review.other_submission_id not in browser.driver.page_source
    browser.css(f"a[href='/lab/submissions/{review.submission_id}/report']").click()
    browser.check("lab-report")
    assert "verifies" in browser.text()
    assert not browser.all("#sign-off"), "a lab cannot sign its own report off"
    # Any zone, picked on the settings page, then back to the page it was opened from.
    report = f"/lab/submissions/{review.submission_id}/report"
    browser.css("footer a[href^='/settings']").click()
    wait_until("the settings", lambda: "/settings" in browser.driver.current_url, timeout=30)
    browser.check("settings")
    _choose(browser, "#zone", "Asia/Kolkata")
    browser.css("#save-zone").click()
    # The settings page's own address ends with the report's too (its `back`): wait for the report.
    wait_until("the report again", lambda: browser.driver.current_url == browser.base + report, timeout=30)
    assert " IST" in browser.text() and " UTC" not in browser.text()
    assert browser.read("#shown-zone") == "Asia/Kolkata"
    browser.open(f"/lab/submissions/{review.other_submission_id}/report")
    assert "Not possible" in browser.css("h1").text
    browser.open("/review/queue")
    assert "Not possible" in browser.css("h1").text


def test_a_reviewer_checks_the_audit_log_and_reissues_a_report(review: Review, browser: Browser) -> None:
    sid = review.submission_id
    with _reviewer(review.stack) as reviewer:
        before = reviewer.clearinghouse.get_report(submission_id=sid).version
    browser.sign_in(review.stack.tokens["reviewer"])
    wait_until("the queue", lambda: browser.driver.current_url.endswith("/review/queue"), timeout=30)
    browser.css("a[href='/review/audit']").click()
    browser.check("audit-log")
    assert "intact" in browser.css("#audit-verification").text
    browser.open(f"/review/submissions/{sid}/report")
    browser.css("#reissue-reason").send_keys("Policy updated.")
    browser.css("#reissue").click()
    wait_until("the new version", lambda: browser.read("h1").endswith(f"version {before + 1}"), 60)
    browser.check("report-reissued")
    with _reviewer(review.stack) as reviewer:
        assert reviewer.clearinghouse.get_report(submission_id=sid).version == before + 1
