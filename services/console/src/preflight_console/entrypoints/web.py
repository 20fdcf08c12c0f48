"""The console's web application (Starlette, server-rendered Jinja2 pages, no script).

Each page belongs to one role (`/review/…` reviewers, `/operator/…` operators, `/lab/…`
labs); another role gets 403 before any API is called, and the APIs then decide what the
user may see. Every POST needs the session's CSRF token (403 without it) and, when the
browser names an Origin, this console's own. Every answer carries a strict
Content-Security-Policy (no script, no inline style, nothing from elsewhere) and the other
security headers of `SECURITY_HEADERS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import importlib.util
import json
import logging
import mimetypes
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import grpc
from jinja2 import Environment, FileSystemLoader, select_autoescape
from preflight.benchmark.v1 import benchmark_pb2
from preflight.clearinghouse.v1 import clearinghouse_pb2
from preflight.common.v1 import common_pb2
from preflight.intake.v1 import intake_pb2
from preflight.sdk.errors import InvalidArgument, PreflightError
from preflight_common.auth import Principal, Role
from preflight_common.bus import KNOWN_SECTORS
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from preflight_console.adapters.apis import Apis
from preflight_console.adapters.openpgp import OpenPgpSigner
from preflight_console.config import Settings
from preflight_console.domain import timing
from preflight_console.domain.plot import score_plot
from preflight_console.domain.progress import progress
from preflight_console.domain.sessions import CONSOLE_ROLES, Session, SessionStore, Signer
from preflight_console.entrypoints import feeds
from preflight_console.service_layer import views
from preflight_console.service_layer.sign_in import OpenIdSignIn, SignInFailed

log = logging.getLogger(__name__)

SESSION_COOKIE = "preflight_console_session"
SIGN_IN_COOKIE = "preflight_console_sign_in"
# The state of an OpenID Connect sign-in under way. SameSite=Lax, not Strict: the provider's
# redirect back is a cross-site navigation, on which a Strict cookie would not be sent.
OIDC_COOKIE = "preflight_console_oidc"
OIDC_PATH = "/sign-in/oidc"
MAX_FORM_BYTES = 64 * 1024
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: browsers would then send `Origin: null` on form posts, whose Origin is checked.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cache-Control": "no-store",
}
# A path on this console, and nothing a browser could read as another host ("//host", "/\\host").
LOCAL_PATH = re.compile(r"/(?:[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*)?")
HOME = {Role.REVIEWER: "/review/queue", Role.OPERATOR: "/operator/findings", Role.LAB: "/lab/submissions"}
FINDING_STATES = ("RECEIVED", "TRIAGED", "VALIDATED", "PATCH_AVAILABLE", "DISCLOSED", "INVALID", "CLOSED")
# TLP labels as the API names them (common.v1.Tlp, without the prefix) and as people read them.
TLPS = {
    name.removeprefix("TLP_"): name.removeprefix("TLP_").replace("_STRICT", "+STRICT")
    for name, _ in common_pb2.Tlp.items()
    if name != "TLP_UNSPECIFIED"
}
EXPORTS = {
    "csaf": clearinghouse_pb2.EXPORT_FORMAT_CSAF,
    "osv": clearinghouse_pb2.EXPORT_FORMAT_OSV,
    "stix": clearinghouse_pb2.EXPORT_FORMAT_STIX,
}
# Patch statuses an operator reports, as the API names them (without the prefix), and as read.
PATCH_STATUSES = {
    name.removeprefix("PATCH_STATUS_"): name.removeprefix("PATCH_STATUS_").replace("_", " ").lower()
    for name, _ in clearinghouse_pb2.PatchStatus.items()
    if name != "PATCH_STATUS_UNSPECIFIED"
}
RPC_STATUS = {
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
}


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every answer, and HSTS to those over HTTPS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                # Inspect's log viewer (its page, scripts and workers), and nothing else, is
                # answered under the policy it ships with.
                if VIEWER_PATH.fullmatch(scope["path"]):
                    headers["Content-Security-Policy"] = viewer_csp()
                if scope.get("scheme") == "https":
                    headers["Strict-Transport-Security"] = "max-age=63072000"
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True)
class Form:
    """A posted urlencoded form."""

    fields: dict[str, list[str]]

    def one(self, name: str) -> str:
        """The field's first value, stripped; "" when absent."""
        return (self.fields.get(name) or [""])[0].strip()

    def all(self, name: str) -> list[str]:
        """Every value of the field."""
        return self.fields.get(name, [])


class Refused(Exception):
    """Answer with `status` and `message` (no API was changed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[["Console", Request, Session, Form], Awaitable[Response]]


class Console:
    """The application's state: settings, API stubs, sessions and templates."""

    def __init__(self, settings: Settings, apis: Apis) -> None:
        self.settings = settings
        self.apis = apis
        self.signer = Signer(settings.session_key())
        self.sessions = SessionStore(self.signer, settings.session_ttl, settings.session_db)
        self.oidc = OpenIdSignIn(settings.oidc, apis, settings.session_ttl) if settings.oidc else None
        folder = resources.files("preflight_console") / "templates"
        self.templates = Environment(
            loader=FileSystemLoader(str(folder)), autoescape=select_autoescape(["html"]), auto_reload=False
        )

    def render(
        self, request: Request, name: str, session: Session | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """The template `name` with the session's CSRF token and time zone."""
        zone = session.time_zone if session else "UTC"
        html = self.templates.get_template(name).render(
            request_path=request.url.path,
            session=session,
            viewer=session.viewer if session else None,
            csrf=session.csrf if session else "",
            zone=zone,
            show=lambda value: timing.show(views.when(value), zone),
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def secure(self, request: Request) -> bool:
        """Whether cookies get the Secure attribute: always, or when the request came over HTTPS."""
        return self.settings.secure_cookies == "always" or request.url.scheme == "https"


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def _form(request: Request) -> Form:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, "the form is too large")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise Refused(415, "forms are posted urlencoded")
    return Form(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))


def _same_origin(request: Request) -> bool:
    # Browsers name the Origin of every POST; a request without one comes from no page.
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def _refusal(console: Console, request: Request, session: Session | None, refused: Refused) -> Response:
    return console.render(request, "error.html", session, refused.status, message=refused.message)


def _rpc_refusal(error: PreflightError) -> Refused:
    status = RPC_STATUS.get(error.code)
    if status is None:
        return Refused(502, "a Preflight service did not answer; try again")
    message = error.message
    if isinstance(error, InvalidArgument) and error.field_violations:
        message = "; ".join(f"{v.field}: {v.description}" for v in error.field_violations)
    return Refused(status, message)


def page(*roles: Role) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """A page or action of `roles`: signed in (else the sign-in page; a POST is refused 403),
    of one of the roles (else 403), and for a POST with this session's CSRF token (else 403)."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            console = _console(request)
            session = console.sessions.get(request.cookies.get(SESSION_COOKIE))
            posted = request.method == "POST"
            try:
                if session is None:
                    if posted:
                        raise Refused(403, "sign in first")
                    return RedirectResponse("/sign-in", status_code=303)
                if session.viewer.role not in roles:
                    raise Refused(403, "this page is not for your role")
                form = Form({})
                if posted:
                    form = await _form(request)
                    if not _same_origin(request) or not console.signer.verify(
                        "csrf", session.session_id, form.one("csrf")
                    ):
                        raise Refused(403, "the form's CSRF token is missing or wrong; reload the page")
                try:
                    return await handler(console, request, session, form)
                except PreflightError as error:
                    if error.code == grpc.StatusCode.UNAUTHENTICATED:
                        console.sessions.end(request.cookies.get(SESSION_COOKIE))
                        return RedirectResponse("/sign-in", status_code=303)
                    raise _rpc_refusal(error) from None
            except Refused as refused:
                return _refusal(console, request, session, refused)

        endpoint.__name__ = handler.__name__
        return endpoint

    return wrap


ANY_ROLE = CONSOLE_ROLES


# -- signing in and out ------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """Liveness and readiness: the process answers."""
    return PlainTextResponse("ok")


async def home(request: Request) -> Response:
    console = _console(request)
    session = console.sessions.get(request.cookies.get(SESSION_COOKIE))
    return RedirectResponse(HOME[session.viewer.role] if session else "/sign-in", status_code=303)


def _sign_in_page(console: Console, request: Request, status: int = 200, message: str = "") -> Response:
    nonce = secrets.token_urlsafe(32)
    response = console.render(
        request,
        "sign_in.html",
        None,
        status,
        sign_in_csrf=console.signer.sign("sign-in", nonce),
        oidc_name=console.oidc.settings.name if console.oidc else "",
        message=message,
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=console.secure(request),
        path="/sign-in",
    )
    return response


async def sign_in(request: Request) -> Response:
    """GET: the sign-in form. POST: validate the token with the identity service, start a session."""
    console = _console(request)
    if request.method == "GET":
        return _sign_in_page(console, request)
    try:
        form = await _form(request)
    except Refused as refused:
        return _refusal(console, request, None, refused)
    nonce = request.cookies.get(SIGN_IN_COOKIE, "")
    if (
        not nonce
        or not _same_origin(request)
        or not console.signer.verify("sign-in", nonce, form.one("csrf"))
    ):
        return _refusal(console, request, None, Refused(403, "the form's CSRF token is missing or wrong"))
    token = form.one("token")
    if not token:
        return _sign_in_page(console, request, 400, "token: enter your Preflight token")
    # gRPC refuses to send a header value with a control or non-ASCII character at all.
    if not (token.isascii() and token.isprintable()):
        return _sign_in_page(console, request, 400, "token: a Preflight token is printable ASCII")
    try:
        viewer = await views.who_is(console.apis, token)
    except views.NotSignedIn as exc:
        return _sign_in_page(console, request, 401, str(exc))
    except PreflightError:
        return _sign_in_page(console, request, 502, "the identity service did not answer; try again")
    home_page = RedirectResponse(HOME[viewer.role], status_code=303)
    return _start_session(console, request, token, viewer, home_page)


def _start_session(
    console: Console,
    request: Request,
    token: str,
    viewer: Principal,
    response: Response,
    issued_token_id: str = "",
) -> Response:
    """`response`, starting a session for `viewer` holding `token` (its cookie; `issued_token_id`
    when the console's sign-in had the token issued), the sign-in's own cookies gone."""
    cookie, _ = console.sessions.create(token, viewer, issued_token_id)
    secure = console.secure(request)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(console.settings.session_ttl),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in", secure=secure, httponly=True, samesite="strict")
    response.delete_cookie(OIDC_COOKIE, path=OIDC_PATH, secure=secure, httponly=True, samesite="lax")
    return response


async def oidc_start(request: Request) -> Response:
    """Sign in through the OpenID provider: to its authorization endpoint, the state in a cookie."""
    console = _console(request)
    if console.oidc is None:
        return _refusal(console, request, None, Refused(404, "sign-in through a provider is not set up here"))
    try:
        location, state = await console.oidc.start(_callback_uri(request))
    except SignInFailed as failed:
        return _sign_in_page(console, request, failed.status, str(failed))
    response = RedirectResponse(location, status_code=303)
    response.set_cookie(
        OIDC_COOKIE, state, httponly=True, samesite="lax", secure=console.secure(request), path=OIDC_PATH
    )
    return response


def _callback_uri(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{OIDC_PATH}/callback"


async def oidc_callback(request: Request) -> Response:
    """The provider's answer: with this browser's state, the code redeemed, the ID token verified
    here and exchanged at intake; then a session, and on to the user's home page."""
    console = _console(request)
    if console.oidc is None:
        return _refusal(console, request, None, Refused(404, "sign-in through a provider is not set up here"))
    state = request.query_params.get("state", "")
    kept = request.cookies.get(OIDC_COOKIE, "")
    if not state or not kept or not hmac.compare_digest(state.encode(), kept.encode()):
        return _sign_in_page(console, request, 400, "state: this sign-in did not start in this browser")
    error = request.query_params.get("error", "")
    if error:  # e.g. access_denied: the user cancelled, or the provider refused them
        console.oidc.abandon(state)
        reason = re.sub(r"[^a-z_]", "", error)[:64]
        return _sign_in_page(console, request, 401, f"the provider did not sign you in ({reason})")
    try:
        signed_in = await console.oidc.finish(state, request.query_params.get("code", ""))
    except SignInFailed as failed:
        return _sign_in_page(console, request, failed.status, str(failed))
    # A page, not a redirect: the navigation here came from the provider's site, and a browser
    # would not send the (SameSite=Strict) session cookie on a redirect continuing it.
    page = console.render(request, "signed_in.html", None, home=HOME[signed_in.principal.role])
    return _start_session(console, request, signed_in.token, signed_in.principal, page, signed_in.token_id)


@page(*ANY_ROLE)
async def sign_out(console: Console, request: Request, session: Session, form: Form) -> Response:
    """End the session, and with it the token the console's sign-in had issued for it (revoked at
    intake, so it works nowhere any more); a token the user brought stays theirs."""
    try:
        await views.end_sign_in(console.apis, session)
    except PreflightError as exc:
        # The session ends all the same; the token lapses at the session's expiry at the latest.
        log.warning("could not revoke the signed-out session's token: %s", exc.code.name)
    console.sessions.end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=console.secure(request), httponly=True, samesite="strict"
    )
    return response


def _local_path(path: str) -> str:
    """`path` when it is a path on this console, else "/"."""
    return path if LOCAL_PATH.fullmatch(path) else "/"


@page(*ANY_ROLE)
async def settings(console: Console, request: Request, session: Session, form: Form) -> Response:
    """The settings form: the time zone every time is shown in, any IANA zone by region (no
    script can read the browser's own zone, so the user picks it), then back to `?back=`."""
    return console.render(
        request,
        "settings.html",
        session,
        zone_groups=timing.zone_groups(),
        back=_local_path(request.query_params.get("back", "")),
    )


@page(*ANY_ROLE)
async def time_zone(console: Console, request: Request, session: Session, form: Form) -> Response:
    """Show times in another IANA time zone for the rest of the session."""
    try:
        timing.zone(form.one("zone"))
    except ValueError as exc:
        raise Refused(400, f"zone: {exc}") from None
    console.sessions.set_time_zone(session, form.one("zone"))
    return RedirectResponse(_local_path(form.one("back")), status_code=303)


# -- reviewers ---------------------------------------------------------------------------------


def _status(value: intake_pb2.SubmissionStatus.ValueType) -> str:
    return (
        intake_pb2.SubmissionStatus.Name(value).removeprefix("SUBMISSION_STATUS_").replace("_", " ").lower()
    )


def _job_status(value: benchmark_pb2.JobStatus.ValueType) -> str:
    return benchmark_pb2.JobStatus.Name(value).removeprefix("JOB_STATUS_").lower()


@page(Role.REVIEWER)
async def queue(console: Console, request: Request, session: Session, form: Form) -> Response:
    """Every open submission, soonest review deadline first, with the time left and its band, and
    its jobs' progress (asked for the whole queue at once, not per submission)."""
    now = timing.utc_now()
    rows = []
    found = await views.open_submissions(console.apis, session)
    summaries = await views.job_summaries(console.apis, session, [s.submission_id for s in found])
    for item in found:
        deadline = views.when(item.review_deadline)
        summary = summaries.get(item.submission_id, benchmark_pb2.JobSummary())
        rows.append(
            {
                "submission": item,
                "status": _status(item.status),
                "band": timing.band(deadline, now) if deadline else "on-track",
                "left": timing.time_left(deadline, now) if deadline else "no deadline",
                "jobs": progress(summary.planned, summary.completed, summary.failed),
            }
        )
    return console.render(request, "queue.html", session, rows=rows)


@page(Role.REVIEWER)
async def submission_page(console: Console, request: Request, session: Session, form: Form) -> Response:
    """A submission: its status timeline, its jobs and a link to its report."""
    submission_id = request.path_params["submission_id"]
    item, found_jobs, found_report = await asyncio.gather(
        views.submission(console.apis, session, submission_id),
        views.jobs(console.apis, session, submission_id),
        views.report(console.apis, session, submission_id),
    )
    timeline: list[tuple[Any, str]] = [(item.received_at, "received")]
    jobs = []
    for job in found_jobs:
        started, finished = views.when(job.started_at), views.when(job.finished_at)
        if started:
            timeline.append((job.started_at, f"{job.suite_id} started (attempt {job.attempt})"))
        if finished:
            timeline.append((job.finished_at, f"{job.suite_id} {_job_status(job.status)}"))
        jobs.append(
            {
                "job": job,
                "status": _job_status(job.status),
                "duration": f"{(finished - started).total_seconds():.0f} s" if started and finished else "—",
                "logs": [n for n, uri in enumerate(job.eval_log_uri.split(",")) if uri.strip()],
            }
        )
    if found_report is not None:
        timeline.append((found_report.issued_at, f"report version {found_report.version} issued"))
        timeline.extend((s.signed_off_at, f"signed off by {s.reviewer_id}") for s in found_report.sign_offs)
    timeline.sort(key=lambda entry: (entry[0].seconds, entry[0].nanos))
    return console.render(
        request,
        "submission.html",
        session,
        submission=item,
        state=_status(item.status),
        timeline=timeline,
        jobs=jobs,
        report=found_report,
    )


def _log_index(request: Request) -> int:
    index = request.path_params["index"]
    if not index.isdigit() or len(index) > 4:
        raise Refused(404, "no such evaluation log")
    return int(index)


@page(Role.REVIEWER)
async def eval_log(console: Console, request: Request, session: Session, form: Form) -> Response:
    """One of a job's evaluation logs, as the benchmark service reads it for the reviewer: task,
    model, status, each scorer's metrics and each sample's scores, and a link to download it."""
    job_id, index = request.path_params["job_id"], _log_index(request)
    found = await views.eval_log(console.apis, session, job_id, index)
    samples = [
        {"sample": s, "scores": ", ".join(f"{name}: {value}" for name, value in sorted(s.scores.items()))}
        for s in found.samples
    ]
    return console.render(
        request,
        "eval_log.html",
        session,
        log=found,
        samples=samples,
        job_id=job_id,
        index=index,
        viewer_log=VIEWER_LOG,
    )


@page(Role.REVIEWER)
async def eval_log_download(console: Console, request: Request, session: Session, form: Form) -> Response:
    """The evaluation log's file, streamed from the benchmark service as the reviewer may read it
    (Inspect's own format: `inspect view` opens it)."""
    log = await views.eval_log_bytes(
        console.apis, session, request.path_params["job_id"], _log_index(request)
    )
    filename = "".join(c for c in log.name if c.isalnum() or c in "._-") or "eval-log.eval"
    return StreamingResponse(
        log.chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Length": str(log.size),
        },
    )


# Inspect's log viewer, as its package ships it: a script application with a Content-Security-Policy
# of its own (its inline scripts' hashes, its workers), served under each log's path so that its
# relative requests stay there.
VIEWER_LOG = "logs/log.eval"
RANGE = re.compile(r"bytes=(\d{1,15})-(\d{0,15})")


VIEWER_PATH = re.compile(r"/review/jobs/[^/]+/logs/[^/]+/viewer/.*")


@functools.cache
def viewer_dist() -> Path:
    """The folder of the viewer's files in the installed inspect_ai package, found without importing
    the package (which takes seconds)."""
    spec = importlib.util.find_spec("inspect_ai")
    assert spec is not None and spec.submodule_search_locations, "inspect_ai is installed"
    return Path(spec.submodule_search_locations[0]) / "_view" / "dist"


@functools.cache
def viewer_csp() -> str:
    """The viewer's own policy (`content-security-policy.json` of its dist), framed by no one."""
    policy = json.loads((viewer_dist() / "content-security-policy.json").read_text())
    directives = [" ".join([name, *sources]) for name, sources in policy["directives"].items()]
    return "; ".join([*directives, "frame-ancestors 'none'"])


@page(Role.REVIEWER)
async def viewer_file(console: Console, request: Request, session: Session, form: Form) -> Response:
    """A file of Inspect's log viewer (its page and assets) under the log's path, answered under the
    viewer's own policy (`SecurityHeaders`), which allows its scripts and nothing from elsewhere."""
    _log_index(request)
    name = request.path_params["asset"] or "index.html"
    if not LOCAL_PATH.fullmatch(f"/{name}") or ".." in name.split("/"):
        raise Refused(404, "no such file of the viewer")
    asset = viewer_dist().joinpath(*name.split("/"))
    if not asset.is_file():
        raise Refused(404, "no such file of the viewer")
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Response(asset.read_bytes(), media_type=media_type)


@page(Role.REVIEWER)
async def viewer_log(console: Console, request: Request, session: Session, form: Form) -> Response:
    """The log for Inspect's viewer, which reads it by ranges (HEAD for its size, then `Range: bytes=`
    requests); each is read by the benchmark service with the reviewer's own token."""
    job_id, index = request.path_params["job_id"], _log_index(request)
    if request.method == "HEAD":
        log = await views.eval_log_bytes(console.apis, session, job_id, index, length=1)
        return Response(b"", headers={"Content-Length": str(log.size), "Accept-Ranges": "bytes"})
    asked = RANGE.fullmatch(request.headers.get("range", "bytes=0-"))
    if asked is None:
        raise Refused(416, "range: bytes=<first>-[<last>] only")
    first, last = int(asked.group(1)), int(asked.group(2)) if asked.group(2) else None
    length = 0 if last is None else last - first + 1
    if length < 0:
        raise Refused(416, "range: the last byte comes before the first")
    log = await views.eval_log_bytes(console.apis, session, job_id, index, offset=first, length=length)
    end = min(log.size, first + length if length else log.size) - 1
    if first >= log.size:
        return Response(b"", status_code=416, headers={"Content-Range": f"bytes */{log.size}"})
    return StreamingResponse(
        log.chunks,
        status_code=206,
        media_type="application/octet-stream",
        headers={"Content-Range": f"bytes {first}-{end}/{log.size}", "Content-Length": str(end - first + 1)},
    )


async def _report_page(console: Console, request: Request, session: Session) -> Response:
    submission_id = request.path_params["submission_id"]
    found = await views.report(console.apis, session, submission_id)
    if found is None:
        raise Refused(404, "this submission has no report yet")
    verification = await views.verify(console.apis, session, found)
    plot = score_plot([(s.capability, s.score, s.ci_low, s.ci_high) for s in found.scores])
    return console.render(
        request,
        "report.html",
        session,
        report=found,
        verification=verification,
        plot=plot,
        submission_id=submission_id,
    )


@page(Role.REVIEWER)
async def report_page(console: Console, request: Request, session: Session, form: Form) -> Response:
    """A submission's current report: scores plotted and tabulated, tier, signature, notes, sign-off."""
    return await _report_page(console, request, session)


@page(Role.REVIEWER)
async def sign_off(console: Console, request: Request, session: Session, form: Form) -> Response:
    """Sign the report off, then back to it."""
    await views.sign_off(console.apis, session, request.path_params["report_id"], form.one("comment"))
    return RedirectResponse(f"/review/submissions/{form.one('submission_id')}/report", status_code=303)


@page(Role.REVIEWER)
async def add_note(console: Console, request: Request, session: Session, form: Form) -> Response:
    """Add a note to the report, then back to it."""
    await views.add_note(console.apis, session, request.path_params["report_id"], form.one("text"))
    return RedirectResponse(f"/review/submissions/{form.one('submission_id')}/report", status_code=303)


@page(Role.REVIEWER)
async def reissue(console: Console, request: Request, session: Session, form: Form) -> Response:
    """Recompute the submission's report with the current policy as a new version, then show it."""
    submission_id = request.path_params["submission_id"]
    await views.reissue(console.apis, session, submission_id, form.one("reason"))
    return RedirectResponse(f"/review/submissions/{submission_id}/report", status_code=303)


@page(Role.REVIEWER)
async def audit_log(console: Console, request: Request, session: Session, form: Form) -> Response:
    """The audit log's hash chain, checked by the clearinghouse from its first entry to its head."""
    verification = await views.verify_audit_log(console.apis, session)
    return console.render(request, "audit.html", session, verification=verification)


def _finding_row(finding: clearinghouse_pb2.Finding) -> dict[str, Any]:
    return {
        "finding": finding,
        "state": views.state_name(finding.state),
        "severity": clearinghouse_pb2.Severity.Name(finding.severity).removeprefix("SEVERITY_").lower(),
        "tlp": _tlp_label(finding.tlp),
    }


def _tlp_label(value: common_pb2.Tlp.ValueType) -> str:
    return TLPS.get(common_pb2.Tlp.Name(value).removeprefix("TLP_"), "unset")


@page(Role.REVIEWER)
async def findings_board(console: Console, request: Request, session: Session, form: Form) -> Response:
    """Every finding, grouped by disclosure state."""
    board: dict[str, list[dict[str, Any]]] = {state: [] for state in FINDING_STATES}
    for finding in await views.findings(console.apis, session):
        row = _finding_row(finding)
        board.setdefault(row["state"], []).append(row)
    return console.render(request, "findings.html", session, board=board)


def _sharing_choice(form: Form) -> tuple[str, list[str], list[str]]:
    tlp = form.one("tlp")
    if tlp not in TLPS:
        raise Refused(400, "tlp: choose a TLP label")
    organisations = [o.strip() for o in form.one("organisations").replace("\n", ",").split(",") if o.strip()]
    sectors = [s for s in form.all("sectors") if s]
    unknown = [s for s in sectors if s not in KNOWN_SECTORS]
    if unknown:
        raise Refused(400, f"sectors: unknown sector {unknown[0]!r}")
    return tlp, organisations, sectors


def _revision(form: Form) -> int:
    value = form.one("revision")
    if not value.isdigit():
        raise Refused(400, "revision: missing; reload the page")
    return int(value)


@page(Role.REVIEWER)
async def finding_page(console: Console, request: Request, session: Session, form: Form) -> Response:
    """A finding: its assessment, the transitions the workflow allows and its sharing."""
    found = await views.finding(console.apis, session, request.path_params["finding_id"])
    return console.render(
        request,
        "finding.html",
        session,
        row=_finding_row(found.finding),
        transitions=[views.state_name(s) for s in found.next_states],
        tlps=TLPS,
        sectors=sorted(KNOWN_SECTORS),
    )


@page(Role.REVIEWER)
async def transition(console: Console, request: Request, session: Session, form: Form) -> Response:
    """Move the finding to an allowed state."""
    finding_id = request.path_params["finding_id"]
    target = form.one("target")
    if target not in FINDING_STATES:
        raise Refused(400, "target: choose a state")
    await views.transition(console.apis, session, finding_id, target, form.one("reason"), _revision(form))
    return RedirectResponse(f"/review/findings/{finding_id}", status_code=303)


@page(Role.REVIEWER)
async def assessment(console: Console, request: Request, session: Session, form: Form) -> Response:
    """Set the finding's CVSS vectors; the clearinghouse checks and scores them."""
    finding_id = request.path_params["finding_id"]
    v3, v4 = form.one("cvss_v3_vector"), form.one("cvss_v4_vector")
    if not v3 and not v4:
        raise Refused(400, "cvss_v3_vector: enter a CVSS 3.1 or 4.0 vector")
    await views.assess(console.apis, session, finding_id, v3, v4, form.one("reason"), _revision(form))
    return RedirectResponse(f"/review/findings/{finding_id}", status_code=303)


@page(Role.REVIEWER)
async def sharing(console: Console, request: Request, session: Session, form: Form) -> Response:
    """Without `confirm`: the organisations the choice would reach (nothing saved). With it: save."""
    finding_id = request.path_params["finding_id"]
    tlp, organisations, sectors = _sharing_choice(form)
    revision = _revision(form)
    audience = common_pb2.Audience(organisations=organisations, sectors=sectors)
    label = common_pb2.Tlp.Value("TLP_" + tlp)
    if form.one("confirm") != "yes":
        found = await views.finding(console.apis, session, finding_id)
        return console.render(
            request,
            "sharing_preview.html",
            session,
            row=_finding_row(found.finding),
            tlp=tlp,
            tlp_label=TLPS[tlp],
            organisations=organisations,
            sectors=sectors,
            reason=form.one("reason"),
            revision=revision,
            reached=await views.preview_sharing(console.apis, session, finding_id, label, audience),
        )
    await views.share(console.apis, session, finding_id, label, audience, form.one("reason"), revision)
    return RedirectResponse(f"/review/findings/{finding_id}", status_code=303)


# -- operators ---------------------------------------------------------------------------------


@page(Role.OPERATOR)
async def shared_findings(console: Console, request: Request, session: Session, form: Form) -> Response:
    """The findings shared with the operator's organisation or sectors."""
    rows = [_finding_row(f) for f in await views.findings(console.apis, session)]
    return console.render(request, "operator_findings.html", session, rows=rows)


@page(Role.OPERATOR)
async def shared_finding(console: Console, request: Request, session: Session, form: Form) -> Response:
    """One shared finding, as the operator may see it, with its export downloads."""
    found = await views.finding(console.apis, session, request.path_params["finding_id"])
    own = [p for p in found.finding.patch_statuses if p.organisation == session.viewer.organisation]
    return console.render(
        request,
        "operator_finding.html",
        session,
        row=_finding_row(found.finding),
        exports=EXPORTS,
        patch_statuses=PATCH_STATUSES,
        own_status=own[0] if own else None,
        status_name=lambda value: clearinghouse_pb2.PatchStatus.Name(value).removeprefix("PATCH_STATUS_"),
    )


@page(Role.OPERATOR)
async def patch_status(console: Console, request: Request, session: Session, form: Form) -> Response:
    """Report the organisation's patch status for the finding, then back to it."""
    finding_id = request.path_params["finding_id"]
    status = form.one("status")
    if status not in PATCH_STATUSES:
        raise Refused(400, "status: choose a patch status")
    value = clearinghouse_pb2.PatchStatus.Value(f"PATCH_STATUS_{status}")
    await views.set_patch_status(console.apis, session, finding_id, value, form.one("note"))
    return RedirectResponse(f"/operator/findings/{finding_id}", status_code=303)


@page(Role.OPERATOR)
async def export(console: Console, request: Request, session: Session, form: Form) -> Response:
    """A shared finding as a CSAF, OSV or STIX document, downloaded."""
    fmt = EXPORTS.get(request.path_params["format"])
    if fmt is None:
        raise Refused(404, "no such export format")
    document = await views.export(console.apis, session, request.path_params["finding_id"], fmt)
    filename = "".join(c for c in document.filename if c.isalnum() or c in "._-") or "finding"
    return Response(
        document.document,
        media_type=document.media_type or "application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@page(Role.OPERATOR)
async def operator_alerts(console: Console, request: Request, session: Session, form: Form) -> Response:
    """The alerts about findings shared with the operator, newest first, with their acknowledgement."""
    found = await views.alerts(console.apis, session)
    return console.render(request, "operator_alerts.html", session, alerts=found)


@page(Role.OPERATOR)
async def acknowledge(console: Console, request: Request, session: Session, form: Form) -> Response:
    """Acknowledge an alert for the operator's organisation, then back to the alerts."""
    await views.acknowledge(console.apis, session, request.path_params["alert_id"], form.one("comment"))
    return RedirectResponse("/operator/alerts", status_code=303)


# -- labs --------------------------------------------------------------------------------------


@page(Role.LAB)
async def lab_submissions(console: Console, request: Request, session: Session, form: Form) -> Response:
    """The lab's own submissions and their status."""
    rows = [
        {"submission": s, "status": _status(s.status)} for s in await views.submissions(console.apis, session)
    ]
    return console.render(request, "lab_submissions.html", session, rows=rows)


@page(Role.LAB)
async def lab_report(console: Console, request: Request, session: Session, form: Form) -> Response:
    """The signed report of one of the lab's submissions."""
    return await _report_page(console, request, session)


def routes() -> list[Route | Mount]:
    """Every route of the console."""
    static = resources.files("preflight_console") / "static"
    return [
        Route("/healthz", healthz),
        Route("/", home),
        Route("/sign-in", sign_in, methods=["GET", "POST"]),
        Route(OIDC_PATH, oidc_start),
        Route(f"{OIDC_PATH}/callback", oidc_callback),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/settings", settings),
        Route("/time-zone", time_zone, methods=["POST"]),
        Route("/review/queue", queue),
        Route("/review/submissions/{submission_id}", submission_page),
        Route("/review/submissions/{submission_id}/report", report_page),
        Route("/review/jobs/{job_id}/logs/{index}", eval_log),
        Route("/review/jobs/{job_id}/logs/{index}/download", eval_log_download),
        Route(
            f"/review/jobs/{{job_id}}/logs/{{index}}/viewer/{VIEWER_LOG}", viewer_log, methods=["GET", "HEAD"]
        ),
        Route("/review/jobs/{job_id}/logs/{index}/viewer/{asset:path}", viewer_file),
        Route("/review/reports/{report_id}/sign-off", sign_off, methods=["POST"]),
        Route("/review/reports/{report_id}/notes", add_note, methods=["POST"]),
        Route("/review/submissions/{submission_id}/reissue", reissue, methods=["POST"]),
        Route("/review/audit", audit_log),
        Route("/review/findings", findings_board),
        Route("/review/findings/{finding_id}", finding_page),
        Route("/review/findings/{finding_id}/transition", transition, methods=["POST"]),
        Route("/review/findings/{finding_id}/assessment", assessment, methods=["POST"]),
        Route("/review/findings/{finding_id}/sharing", sharing, methods=["POST"]),
        Route("/operator/findings", shared_findings),
        Route("/operator/findings/{finding_id}", shared_finding),
        Route("/operator/findings/{finding_id}/export/{format}", export),
        Route("/operator/findings/{finding_id}/patch-status", patch_status, methods=["POST"]),
        Route("/operator/alerts", operator_alerts),
        Route("/operator/alerts/{alert_id}/acknowledge", acknowledge, methods=["POST"]),
        Route("/lab/submissions", lab_submissions),
        Route("/lab/submissions/{submission_id}/report", lab_report),
        *feeds.routes(),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ]


def build_app(settings: Settings) -> Starlette:
    """The console's ASGI application; its API channels and session file close with it."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        apis = Apis.connect(settings)
        key_file = settings.csaf_openpgp_key_file
        app.state.csaf_signer = signer = OpenPgpSigner(key_file) if key_file else None
        app.state.console = console = Console(settings, apis)
        try:
            yield
        finally:
            console.sessions.close()
            await apis.close()
            if signer:
                signer.close()

    app = Starlette(routes=routes(), lifespan=lifespan)
    app.add_middleware(SecurityHeaders)
    return app
