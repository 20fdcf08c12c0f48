"""The rules a submission and a release-plan change must satisfy.

Every check names the field it is about with its path in the API
(`access.endpoint.base_url`, `contacts[1].email`, …). All violations are
collected, not just the first, so a lab can fix a request in one go.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from preflight_intake.domain.model import AccessWindow, Contact, WindowPolicy

# (seconds, nanos) since the Unix epoch, as a protobuf Timestamp carries it.
Instant = tuple[int, int]

WEIGHT_FORMATS = ("safetensors", "gguf", "pytorch", "onnx")
MAX_CONTACTS = 20
MAX_CAPABILITIES = 50
MAX_REASON = 1000
MAX_INTENDED_USE = 10_000
MAX_URL = 2048
MAX_CREDENTIAL = 4096
_MIN_SECONDS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp())
_MAX_SECONDS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CAPABILITY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Violation:
    """One thing wrong with a request."""

    field: str
    description: str


class InvalidRequest(Exception):
    """A request broke one or more rules; nothing was changed."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations


@dataclass(frozen=True)
class EndpointDraft:
    base_url: str
    model_name: str
    credential: str


@dataclass(frozen=True)
class WeightsDraft:
    artifact_uri: str
    sha256: str
    format: str


@dataclass(frozen=True)
class WindowDraft:
    """An access window as received; a None bound was not given."""

    start: Instant | None
    end: Instant | None


@dataclass(frozen=True)
class SubmissionDraft:
    """A SubmitModel request before validation."""

    developer: str
    name: str
    version: str
    planned_release: Instant | None
    access: EndpointDraft | WeightsDraft | None
    window: WindowDraft | None
    contacts: tuple[Contact, ...]
    declared_capabilities: tuple[str, ...]
    intended_use: str
    share_identity_with_operators: bool
    idempotency_key: str


@dataclass(frozen=True)
class ValidSubmission:
    """What a valid draft establishes: the instants as datetimes."""

    planned_release: datetime
    window: AccessWindow


class _Checker:
    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def fail(self, field: str, description: str) -> None:
        self.violations.append(Violation(field, description))

    def text(
        self, field: str, value: str, *, max_len: int, required: bool = True, multiline: bool = False
    ) -> None:
        if not value:
            if required:
                self.fail(field, "is required")
            return
        if len(value) > max_len:
            self.fail(field, f"must be at most {max_len} characters")
        elif (_CONTROL_EXCEPT_WHITESPACE if multiline else _CONTROL).search(value):
            self.fail(field, "must not contain control characters")
        elif not multiline and value != value.strip():
            self.fail(field, "must not start or end with whitespace")

    def instant(self, field: str, value: Instant | None) -> datetime | None:
        if value is None:
            self.fail(field, "is required")
            return None
        seconds, nanos = value
        if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS) or not (0 <= nanos <= 999_999_999):
            self.fail(field, "is not a valid timestamp")
            return None
        return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanos // 1000)

    def url(self, field: str, value: str, *, schemes: tuple[str, ...]) -> None:
        if not value:
            self.fail(field, "is required")
            return
        if len(value) > MAX_URL or _CONTROL.search(value) or " " in value:
            self.fail(field, f"must be a URL of at most {MAX_URL} characters without spaces")
            return
        try:
            parts = urlsplit(value)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            self.fail(field, "is not a valid URL")
            return
        if parts.scheme == "http" and host is not None and is_loopback(host):
            pass
        elif parts.scheme not in schemes:
            allowed = ", ".join(f"{s}://" for s in schemes)
            self.fail(field, f"must use {allowed} (http:// only on a loopback host)")
            return
        if not host:
            self.fail(field, "must name a host")
        elif parts.username is not None or parts.password is not None:
            self.fail(field, "must not embed credentials; give the credential separately")
        elif parts.fragment:
            self.fail(field, "must not have a #fragment")


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP addresses."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_submission(
    draft: SubmissionDraft, *, organisation: str, policy: WindowPolicy, now: datetime
) -> ValidSubmission:
    """Check every rule of a SubmitModel request; raises InvalidRequest listing all violations."""
    c = _Checker()
    _check_idempotency_key(c, draft.idempotency_key)
    c.text("model.developer", draft.developer, max_len=200)
    if draft.developer and draft.developer != organisation:
        c.fail("model.developer", f"must be your organisation ({organisation!r})")
    c.text("model.name", draft.name, max_len=200)
    c.text("model.version", draft.version, max_len=100)
    _check_access(c, draft.access)
    release = _check_release(c, draft.planned_release, now)
    window = _check_window(c, draft.window, release, policy, now)
    _check_contacts(c, draft.contacts)
    _check_capabilities(c, draft.declared_capabilities)
    c.text("intended_use", draft.intended_use, max_len=MAX_INTENDED_USE, required=False, multiline=True)
    if c.violations:
        raise InvalidRequest(c.violations)
    assert release is not None and window is not None
    return ValidSubmission(release, window)


def validate_idempotency_key(key: str) -> None:
    """Raises InvalidRequest when the key is missing or malformed."""
    c = _Checker()
    _check_idempotency_key(c, key)
    if c.violations:
        raise InvalidRequest(c.violations)


def _check_idempotency_key(c: _Checker, key: str) -> None:
    if not key:
        c.fail("idempotency_key", "is required (the SDK sets one for you)")
    elif len(key) > 128 or not _TOKEN_CHARS.fullmatch(key):
        c.fail("idempotency_key", "must be 1-128 printable ASCII characters without spaces")


def validate_release_plan(
    *,
    planned_release: Instant | None,
    window: WindowDraft | None,
    current_window: AccessWindow,
    reason: str,
    policy: WindowPolicy,
    now: datetime,
) -> ValidSubmission:
    """Check an UpdateReleasePlan request; without a new window the current one must still fit."""
    c = _Checker()
    release = _check_release(c, planned_release, now)
    if window is not None:
        new_window = _check_window(c, window, release, policy, now)
    else:
        new_window = current_window
        if release is not None and current_window.end > release:
            c.fail(
                "planned_release",
                f"is before the current access window ends ({current_window.end.isoformat()}); "
                "give a new access_window that ends by the release",
            )
    c.text("reason", reason, max_len=MAX_REASON, required=False, multiline=True)
    if c.violations:
        raise InvalidRequest(c.violations)
    assert release is not None and new_window is not None
    return ValidSubmission(release, new_window)


def validate_reason(reason: str) -> None:
    """A free-text reason: optional, bounded, no control characters but line breaks."""
    c = _Checker()
    c.text("reason", reason, max_len=MAX_REASON, required=False, multiline=True)
    if c.violations:
        raise InvalidRequest(c.violations)


def validate_identifiers(**identifiers: str) -> None:
    """Opaque identifiers (references, job ids): 1-200 printable ASCII characters without spaces."""
    violations = [
        Violation(name, "is required: 1-200 printable ASCII characters without spaces")
        for name, value in identifiers.items()
        if len(value) > 200 or not _TOKEN_CHARS.fullmatch(value)
    ]
    if violations:
        raise InvalidRequest(violations)


def validate_submission_id(submission_id: str, field: str = "submission_id") -> None:
    """Submission ids are UUIDs in canonical form."""
    try:
        ok = str(uuid.UUID(submission_id)) == submission_id
    except ValueError:
        ok = False
    if not ok:
        raise InvalidRequest(
            [Violation(field, "must be a submission id (a UUID)" if submission_id else "is required")]
        )


def _check_access(c: _Checker, access: EndpointDraft | WeightsDraft | None) -> None:
    if access is None:
        c.fail("access", "is required: give either endpoint or weights")
    elif isinstance(access, EndpointDraft):
        c.url("access.endpoint.base_url", access.base_url, schemes=("https",))
        c.text("access.endpoint.model_name", access.model_name, max_len=200)
        if not access.credential:
            c.fail("access.endpoint.credential", "is required")
        elif len(access.credential) > MAX_CREDENTIAL or not _TOKEN_CHARS.fullmatch(access.credential):
            c.fail(
                "access.endpoint.credential",
                f"must be 1-{MAX_CREDENTIAL} printable ASCII characters without spaces",
            )
    else:
        c.url("access.weights.artifact_uri", access.artifact_uri, schemes=("https", "s3", "gs"))
        if not _SHA256.fullmatch(access.sha256):
            c.fail("access.weights.sha256", "must be the artifact's SHA-256 as 64 lower-case hex characters")
        if access.format not in WEIGHT_FORMATS:
            c.fail("access.weights.format", f"must be one of {', '.join(WEIGHT_FORMATS)}")


def _check_release(c: _Checker, planned_release: Instant | None, now: datetime) -> datetime | None:
    release = c.instant("planned_release", planned_release)
    if release is not None and release <= now:
        c.fail("planned_release", "must be in the future")
        return None
    return release


def _check_window(
    c: _Checker, window: WindowDraft | None, release: datetime | None, policy: WindowPolicy, now: datetime
) -> AccessWindow | None:
    if window is None:
        c.fail("access_window", "is required")
        return None
    start = c.instant("access_window.start", window.start)
    end = c.instant("access_window.end", window.end)
    if start is None or end is None:
        return None
    before = len(c.violations)
    if end <= start:
        c.fail("access_window.end", "must be after access_window.start")
    elif end <= now:
        c.fail("access_window.end", "must be in the future")
    elif release is not None and end > release:
        c.fail("access_window.end", "must not be after planned_release")
    elif (end - start).total_seconds() / 86400 > policy.max_days:
        c.fail("access_window", f"must last at most {policy.max_days:g} days")
    return AccessWindow(start, end) if len(c.violations) == before else None


def _check_contacts(c: _Checker, contacts: tuple[Contact, ...]) -> None:
    if not contacts:
        c.fail("contacts", "needs at least one contact")
    elif len(contacts) > MAX_CONTACTS:
        c.fail("contacts", f"must have at most {MAX_CONTACTS} entries")
    for i, contact in enumerate(contacts[:MAX_CONTACTS]):
        c.text(f"contacts[{i}].name", contact.name, max_len=200)
        if not contact.email:
            c.fail(f"contacts[{i}].email", "is required")
        elif len(contact.email) > 254 or not _EMAIL.fullmatch(contact.email):
            c.fail(f"contacts[{i}].email", "is not a valid e-mail address")
        c.text(f"contacts[{i}].role", contact.role, max_len=100, required=False)


def _check_capabilities(c: _Checker, capabilities: tuple[str, ...]) -> None:
    if len(capabilities) > MAX_CAPABILITIES:
        c.fail("declared_capabilities", f"must have at most {MAX_CAPABILITIES} entries")
        return
    seen: set[str] = set()
    for i, capability in enumerate(capabilities):
        if not _CAPABILITY.fullmatch(capability):
            c.fail(f"declared_capabilities[{i}]", "must be a lower_snake identifier of at most 64 characters")
        elif capability in seen:
            c.fail(f"declared_capabilities[{i}]", f"repeats {capability!r}")
        seen.add(capability)
