"""What every request is held to, in both subdomains: the caller's role and the page size."""

from __future__ import annotations

from preflight_clearinghouse.domain.errors import FieldViolation, InvalidInput, PermissionDenied
from preflight_clearinghouse.domain.sharing import Role, Viewer

MAX_PAGE = 500
DEFAULT_PAGE = 100


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
