"""Comments on a finding: who wrote what, when, for whom, and every revision of it.

A comment is internal (reviewers and admins, and its author) or shared with the finding's audience
(whoever may see the finding). Whoever may see a finding may comment on it; only the author edits
a comment, and an edit is a new revision (the earlier ones are kept, and every revision is
audit-logged), never a silent change. Who reads which comment, and what of its author, is
`domain.sharing.comment_view`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from preflight_clearinghouse.domain.errors import Collector

MAX_COMMENT: Final = 20_000
"""Characters of a comment's body."""


class CommentVisibility(enum.Enum):
    """Who a comment is for."""

    INTERNAL = "INTERNAL"
    """Reviewers and admins (and the comment's author)."""
    AUDIENCE = "AUDIENCE"
    """Whoever may see the finding."""


@dataclass(frozen=True)
class Comment:
    """One comment as stored (its latest revision) or as a viewer sees it."""

    comment_id: str
    finding_id: str
    author_id: str
    author_role: str
    author_organisation: str
    visibility: CommentVisibility
    body: str
    revision: int
    """1 when written; each edit adds one."""
    created_at: datetime
    updated_at: datetime
    seq: int = 0
    """Order of writing (page tokens)."""

    @property
    def internal(self) -> bool:
        return self.visibility is CommentVisibility.INTERNAL


def check_body(body: str, errors: Collector) -> str:
    """The body without surrounding blanks; `body` is added to `errors` unless it has 1 to
    `MAX_COMMENT` characters, all printable but for line breaks and tabs."""
    text = body.strip()
    if not text or len(text) > MAX_COMMENT or not text.replace("\n", "").replace("\t", "").isprintable():
        errors.add("body", f"1 to {MAX_COMMENT} printable characters (line breaks and tabs allowed)")
    return text


def check_visibility(visibility: CommentVisibility | None, errors: Collector) -> None:
    """`visibility` is added to `errors` when it is not given (a comment's or an attachment's
    readers are always chosen, never defaulted)."""
    if visibility is None:
        errors.add("visibility", "choose INTERNAL or AUDIENCE")
