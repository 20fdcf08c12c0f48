"""OpenID Connect sign-in against a real OpenID provider (oidc-provider from npm on loopback), a
real intake (which verifies the ID token again and maps the user) and the console, both as
processes: a user signs in in headless Chromium and lands on their role's page; an unmapped user,
a sign-in from another browser (state), an ID token for another sign-in (nonce) and a code used
twice are refused, and no session starts; signing out revokes the token the sign-in issued."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from preflight_common.ports import free_port
from preflight_console.config import OidcSettings, Settings
from preflight_console.entrypoints.web import SESSION_COOKIE, Console, build_app
from preflight_testkit.axe import wcag_violations
from preflight_testkit.console import sign_in_with_token
from preflight_testkit.oidc import RunningProvider, openid_provider
from preflight_testkit.rpc import introspect
from preflight_testkit.waiting import wait_until
from starlette.testclient import TestClient

pytestmark = pytest.mark.slow  # an OpenID provider, intake and the console as processes

BIN = Path(sys.executable).parent
CLIENT_ID = "preflight-console"
CLIENT_SECRET = "console-secret-" + "y" * 32
ACCOUNTS = {
    "rita": {"email": "rita@agency.example", "email_verified": True, "groups": []},
    "lena": {"email": "lena@acme.example", "email_verified": True, "groups": ["preflight-labs-acme"]},
    "mallory": {"email": "mallory@elsewhere.example", "email_verified": True, "groups": []},
    "trudy": {"email": "trudy@agency.example", "email_verified": True, "groups": []},
    "olga": {"email": "olga@agency.example", "email_verified": True, "groups": []},
}
# What the provider's token endpoint hands these two: tokens the console must refuse itself.
MISISSUE = {"trudy": "tamper", "olga": "expired"}


WAIT = 90.0
"""Seconds a process, a page or a browser step may take."""


def _serving(target: str) -> bool:
    try:
        with grpc.insecure_channel(target) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Deployment:
    provider: RunningProvider
    console: str  # base URL
    intake_env: dict[str, str]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.console, timeout=60, follow_redirects=False)


def _mapping(issuer: str) -> str:
    return f"""
issuers:
  - issuer: {issuer}
    audiences: [{CLIENT_ID}]
    principals:
      - {{claim: sub, value: rita, role: reviewer, organisation: agency}}
      - {{claim: sub, value: trudy, role: reviewer, organisation: agency}}
      - {{claim: sub, value: olga, role: reviewer, organisation: agency}}
      - {{claim: groups, value: preflight-labs-acme, role: lab, organisation: acme}}
"""


def _process(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("oidc-console")
    console_port, intake_port, no_kafka = free_port(), free_port(), free_port()
    console = f"http://127.0.0.1:{console_port}"
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"{console}/sign-in/oidc/callback"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFLIGHT_")}
    keys = folder / "intake.keys"
    keys.write_text(
        subprocess.run(
            [BIN / "preflight-intake", "keygen"], check=True, capture_output=True, text=True
        ).stdout
    )
    keys.chmod(0o600)
    secret = folder / "client.secret"
    secret.write_text(CLIENT_SECRET)
    secret.chmod(0o600)
    mapping = folder / "oidc.yaml"
    with contextlib.ExitStack() as stack:
        provider = stack.enter_context(
            openid_provider(folder, clients=[client], accounts=ACCOUNTS, misissue=MISISSUE)
        )
        mapping.write_text(_mapping(provider.issuer))
        intake_env = {
            **base,
            "PREFLIGHT_INTAKE_ENCRYPTION_KEYS_FILE": str(keys),
            "PREFLIGHT_DATABASE_URL": f"sqlite:///{folder / 'intake.db'}",
            "PREFLIGHT_GRPC_LISTEN": f"127.0.0.1:{intake_port}",
            # Nothing listens there: intake serves its API without Kafka (events wait in the outbox).
            "PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{no_kafka}",
            "PREFLIGHT_CLEARINGHOUSE_TARGET": "127.0.0.1:1",
            "PREFLIGHT_INTAKE_OIDC_FILE": str(mapping),
        }
        console_env = {
            **base,
            "PREFLIGHT_CONSOLE_LISTEN": f"127.0.0.1:{console_port}",
            "PREFLIGHT_INTAKE_TARGET": f"127.0.0.1:{intake_port}",
            "PREFLIGHT_BENCHMARK_TARGET": "127.0.0.1:1",
            "PREFLIGHT_CLEARINGHOUSE_TARGET": "127.0.0.1:1",
            "PREFLIGHT_NOTIFIER_TARGET": "127.0.0.1:1",
            "PREFLIGHT_CONSOLE_SESSION_KEY_FILE": str(folder / "session.key"),
            "PREFLIGHT_CONSOLE_OIDC_ISSUER": provider.issuer,
            "PREFLIGHT_CONSOLE_OIDC_CLIENT_ID": CLIENT_ID,
            "PREFLIGHT_CONSOLE_OIDC_CLIENT_SECRET_FILE": str(secret),
            "PREFLIGHT_CONSOLE_OIDC_SCOPES": "openid email groups",
            "PREFLIGHT_CONSOLE_OIDC_NAME": "the agency's sign-in",
        }
        processes = [
            _process([str(BIN / "preflight-intake"), "serve"], intake_env, folder / "intake.log"),
            _process([str(BIN / "preflight-console"), "serve"], console_env, folder / "console.log"),
        ]
        try:
            wait_until(lambda: _serving(f"127.0.0.1:{intake_port}"), WAIT, "intake")
            wait_until(lambda: _answers(f"{console}/healthz"), WAIT, "the console")
            yield Deployment(provider, console, intake_env)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(60)


def _through_provider(deployment: Deployment, login: str, authorization: str) -> str:
    """The console callback URL the provider sends the browser back to once `login` signed in."""
    with httpx.Client(timeout=60) as browser:
        page = browser.get(authorization, follow_redirects=True)
        assert page.status_code == 200, page.text
        answer = browser.post(str(page.url).rstrip("/") + "/login", data={"login": login})
        while answer.is_redirect:
            location = urljoin(str(answer.url), answer.headers["location"])
            if location.startswith(deployment.console):
                return location
            answer = browser.get(location)
    raise AssertionError(f"the provider did not send the browser back: {answer.status_code}")


def _start(console: httpx.Client) -> str:
    started = console.get("/sign-in/oidc")
    assert started.status_code == 303
    location: str = started.headers["location"]
    return location


def _callback(console: httpx.Client, url: str) -> httpx.Response:
    parts = urlsplit(url)
    return console.get(urlunsplit(("", "", parts.path, parts.query, "")))


def test_a_lab_signs_in_through_the_provider_in_chromium_and_lands_on_its_page(
    deployment: Deployment, tmp_path: Path
) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    # chromedriver holds every command while it deems a navigation pending, and the zero-delay
    # refresh of the page after the callback has held it for good: no command waits for a page
    # here (each step waits for what it needs), and none may take longer than two minutes.
    options.page_load_strategy = "none"
    driver = webdriver.Chrome(options=options, service=Service(str(shutil.which("chromedriver"))))
    driver.command_executor.client_config.timeout = 120

    def found(by: str, value: str) -> Any:
        wait_until(lambda: bool(driver.find_elements(by, value)), WAIT, f"{value} on the page")
        return driver.find_element(by, value)

    try:
        driver.get(f"{deployment.console}/sign-in")
        provider_link = found(By.LINK_TEXT, "Sign in with the agency's sign-in")
        loaded = 'return document.readyState == "complete"'
        wait_until(lambda: bool(driver.execute_script(loaded)), WAIT, "the sign-in page")
        driver.save_screenshot(str(tmp_path / "sign-in.png"))
        assert wcag_violations(driver) == [], "the sign-in page with the provider's link"
        provider_link.click()
        wait_until(
            lambda: driver.current_url.startswith(deployment.provider.issuer),
            WAIT,
            "the provider's login page",
        )
        found(By.ID, "login").send_keys("lena")
        driver.save_screenshot(str(tmp_path / "provider.png"))
        found(By.ID, "submit").click()
        wait_until(
            lambda: driver.current_url == f"{deployment.console}/lab/submissions", WAIT, "the lab's page"
        )
        wait_until(
            lambda: "Signed in as lena (lab, acme)" in driver.find_element(By.TAG_NAME, "body").text,
            WAIT,
            "the signed-in header",
        )
        driver.save_screenshot(str(tmp_path / "lab-submissions.png"))
        session = driver.get_cookie("preflight_console_session")
        assert session is not None and session["httpOnly"] and session["sameSite"] == "Strict"
    finally:
        driver.quit()


def test_a_reviewer_signs_in_over_http_to_the_queue(deployment: Deployment) -> None:
    with deployment.client() as console:
        answer = _callback(console, _through_provider(deployment, "rita", _start(console)))
        assert answer.status_code == 200, answer.text
        assert 'content="0; url=/review/queue"' in answer.text
        assert "preflight_console_session" in console.cookies
        assert "preflight_console_oidc" not in console.cookies
        home = console.get("/")
        assert home.headers["location"] == "/review/queue"


def test_an_unmapped_user_is_refused_and_gets_no_session(deployment: Deployment) -> None:
    with deployment.client() as console:
        answer = _callback(console, _through_provider(deployment, "mallory", _start(console)))
        assert answer.status_code == 403
        assert "your account has no access to Preflight" in answer.text
        assert "preflight_console_session" not in console.cookies


def test_a_callback_in_another_browser_or_for_another_state_is_refused(deployment: Deployment) -> None:
    with deployment.client() as victim, deployment.client() as attacker:
        # The attacker's own sign-in, completed at the provider, then delivered to another browser.
        callback = _through_provider(deployment, "rita", _start(attacker))
        refused = _callback(victim, callback)
        assert refused.status_code == 400
        assert "state: this sign-in did not start in this browser" in refused.text
        assert "preflight_console_session" not in victim.cookies
        # The browser's own sign-in, answered with another state.
        _start(victim)
        parts = urlsplit(callback)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        refused = _callback(
            victim, urlunsplit(("", "", parts.path, urlencode({**query, "state": "forged"}), ""))
        )
        assert refused.status_code == 400
        assert "preflight_console_session" not in victim.cookies


def test_an_id_token_for_another_nonce_is_refused_by_the_console(deployment: Deployment) -> None:
    with deployment.client() as console:
        parts = urlsplit(_start(console))
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        injected = urlunsplit(parts._replace(query=urlencode({**query, "nonce": "the-attackers-nonce"})))
        answer = _callback(console, _through_provider(deployment, "rita", injected))
        assert answer.status_code == 401
        assert "ID token is refused (was not issued for this sign-in (nonce))" in answer.text
        assert "preflight_console_session" not in console.cookies


def test_a_sign_in_completes_once(deployment: Deployment) -> None:
    with deployment.client() as console:
        callback = _through_provider(deployment, "rita", _start(console))
        assert _callback(console, callback).status_code == 200
        console.cookies.clear()
        console.cookies.set(
            "preflight_console_oidc", parse_qs(urlsplit(callback).query)["state"][0], path="/sign-in/oidc"
        )
        replayed = _callback(console, callback)
        assert replayed.status_code == 400
        assert "preflight_console_session" not in console.cookies


@pytest.mark.parametrize(
    ("login", "reason"), [("trudy", "signature does not verify"), ("olga", "has expired")]
)
def test_a_tampered_or_expired_id_token_is_refused_by_the_console(
    deployment: Deployment, login: str, reason: str
) -> None:
    with deployment.client() as console:
        answer = _callback(console, _through_provider(deployment, login, _start(console)))
        assert answer.status_code == 401
        # The console's own check, not intake's (which would refuse it too, in other words).
        assert f"ID token is refused ({reason})" in answer.text
        assert "preflight_console_session" not in console.cookies


def _lab_token(deployment: Deployment) -> str:
    """A Preflight token of acme's lab, made with intake's command line."""
    return subprocess.run(
        [BIN / "preflight-intake", "token", "create", "--role", "lab", "--organisation", "acme"],
        env=deployment.intake_env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]


def test_a_preflight_token_still_signs_in_beside_the_provider(deployment: Deployment) -> None:
    token = _lab_token(deployment)
    with deployment.client() as console:
        assert "Sign in with the agency&#39;s sign-in" in console.get("/sign-in").text
        answer = sign_in_with_token(console, token, deployment.console)
        assert (answer.status_code, answer.headers["location"]) == (303, "/lab/submissions")
        assert console.get("/lab/submissions").status_code == 200


def test_signing_out_revokes_the_token_the_sign_in_issued_and_not_one_brought(
    deployment: Deployment, offline_settings: Settings
) -> None:
    # This console runs in the test's process, so the test can read the token its session holds
    # and then ask intake about it. Browsers reach it at another origin than the registered
    # callback's (as behind a proxy), so the configured redirect URL is what the provider gets.
    origin = "http://console.internal"
    intake = deployment.intake_env["PREFLIGHT_GRPC_LISTEN"]
    settings = replace(
        offline_settings,
        intake_target=intake,
        session_ttl=600.0,
        oidc=OidcSettings(
            deployment.provider.issuer,
            CLIENT_ID,
            CLIENT_SECRET,
            "openid email groups",
            redirect_url=f"{deployment.console}/sign-in/oidc/callback",
        ),
    )
    brought = _lab_token(deployment)
    with TestClient(build_app(settings), base_url=origin, follow_redirects=False) as client:
        console: Console = client.app.state.console  # type: ignore[attr-defined]

        def sign_out() -> None:
            session = console.sessions.get(client.cookies.get(SESSION_COOKIE))
            assert session is not None
            answer = client.post("/sign-out", data={"csrf": session.csrf}, headers={"origin": origin})
            assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in")
            assert console.sessions.get(client.cookies.get(SESSION_COOKIE)) is None

        assert _callback(client, _through_provider(deployment, "lena", _start(client))).status_code == 200
        session = console.sessions.get(client.cookies.get(SESSION_COOKIE))
        assert session is not None
        issued = session.token
        assert introspect(intake, issued).principal.organisation == "acme"
        sign_out()
        with pytest.raises(grpc.RpcError) as refused:
            introspect(intake, issued)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

        client.cookies.clear()
        assert sign_in_with_token(client, brought, origin).status_code == 303
        sign_out()
        assert introspect(intake, brought).active
