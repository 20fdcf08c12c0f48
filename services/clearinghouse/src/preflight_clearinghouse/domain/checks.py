"""What every request is held to, in both subdomains: the caller's role, the page size, text fields."""

from __future__ import annotations

from preflight_clearinghouse.domain.errors import Collector, FieldViolation, InvalidInput, PermissionDenied
from preflight_clearinghouse.domain.sharing import Role, Viewer

MAX_PAGE = 500
DEFAULT_PAGE = 100
MAX_REASON = 2_000
"""Characters of the reason given for a change (a finding's transition, a report's re-issue)."""


def page_size_of(requested: int, default: int = DEFAULT_PAGE) -> int:
    """The page size to use; raises InvalidInput naming `page_size` when out of range."""
    if requested == 0:
        return default
    if not 1 <= requested <= MAX_PAGE:
        raise InvalidInput(
            [FieldViolation("page_size", f"must be between 1 and {MAX_PAGE} (0 for {default})")]
        )
    return requested


def require(viewer: Viewer, roles: frozenset[Role], what: str) -> None:
    """PermissionDenied naming the roles that may do `what`, unless `viewer` has one of them."""
    if viewer.role not in roles:
        raise PermissionDenied(f"{what} requires role {' or '.join(sorted(r.value for r in roles))}")


def check_text(value: str, field_name: str, limit: int, errors: Collector, *, required: bool) -> str:
    """Trimmed text within `limit` characters; required text must not be blank."""
    text = value.strip()
    if required and not text:
        errors.add(field_name, "is required")
    elif len(text) > limit:
        errors.add(field_name, f"at most {limit} characters")
    elif "\x00" in text:
        errors.add(field_name, "must not contain NUL characters")
    return text
