"""Evidence files attached to a finding: what they are, who added them, for whom, and their digest.

An attachment is internal (reviewers and admins, and its author) or shared with the finding's
audience, exactly as a comment is (`domain.sharing.attachment_view`). Its declared content type is
one of `CONTENT_TYPES` and its bytes must be of that type (their magic numbers, or for text and
JSON their encoding and syntax), so that a reader's tools open what the type says; it is kept with
the SHA-256 of its bytes, which the log records instead of the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from preflight_common.fields import ATTACHMENT_LIMIT

from preflight_clearinghouse.domain.errors import Collector
from preflight_clearinghouse.domain.findings.comments import CommentVisibility

MAX_ATTACHMENT: Final = ATTACHMENT_LIMIT
"""Bytes of one attachment (3 MiB): with its request, under gRPC's default 4 MiB message limit."""

MAX_NAME: Final = 255
"""Characters of an attachment's file name."""

MAX_PER_FINDING: Final = 50
"""Attachments one finding may have."""

MAX_BYTES_PER_FINDING: Final = 64 * 1024 * 1024
"""Bytes (64 MiB) all of one finding's attachments may have together."""


@dataclass(frozen=True)
class AttachmentQuota:
    """How many attachments, and how many bytes in all, one finding may have: what any participant
    who may see a finding can add to the database through it is bounded."""

    count: int = MAX_PER_FINDING
    total_bytes: int = MAX_BYTES_PER_FINDING

    def refusal(self, count: int, total_bytes: int, size: int) -> str | None:
        """Why a finding that has `count` attachments of `total_bytes` bytes may not get one of
        `size` bytes more (naming the bound it would pass), or None when it may."""
        if count >= self.count:
            return f"a finding has at most {self.count} attachments"
        if total_bytes + size > self.total_bytes:
            return (
                f"a finding's attachments have at most {self.total_bytes} bytes in all "
                f"({total_bytes} used, {size} more asked for)"
            )
        return None


QUOTA: Final = AttachmentQuota()
"""The bounds a clearinghouse keeps: `MAX_PER_FINDING` attachments, `MAX_BYTES_PER_FINDING` bytes."""


def _text(content: bytes) -> bool:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "\x00" not in text


def _json(content: bytes) -> bool:
    try:
        json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return True


def _starts(*magic: bytes) -> Callable[[bytes], bool]:
    return lambda content: content.startswith(magic)


CONTENT_TYPES: Final[Mapping[str, Callable[[bytes], bool]]] = {
    "text/plain": _text,
    "application/json": _json,
    "application/pdf": _starts(b"%PDF-"),
    "image/png": _starts(b"\x89PNG\r\n\x1a\n"),
    # A local file header, or the end-of-directory record of an empty archive.
    "application/zip": _starts(b"PK\x03\x04", b"PK\x05\x06"),
    # libpcap, either byte order, microsecond or nanosecond timestamps.
    "application/vnd.tcpdump.pcap": _starts(
        b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"
    ),
}
"""The content types an attachment may declare, each with the check its bytes must pass."""


@dataclass(frozen=True)
class Attachment:
    """One attachment's metadata as stored or as a viewer sees it (never its bytes)."""

    attachment_id: str
    finding_id: str
    name: str
    content_type: str
    size: int
    sha256: str
    """Of the bytes, lowercase hex."""
    visibility: CommentVisibility
    author_id: str
    author_role: str
    author_organisation: str
    created_at: datetime
    seq: int = 0
    """Order of adding (page tokens)."""

    @property
    def internal(self) -> bool:
        return self.visibility is CommentVisibility.INTERNAL


def check_attachment(name: str, content_type: str, content: bytes, errors: Collector) -> tuple[str, str]:
    """The file name without surrounding blanks and the content type in lowercase; adds to `errors`
    `name` unless it has 1 to `MAX_NAME` printable characters and no path separator (nor is `.` or
    `..`), `content_type` unless it is one of `CONTENT_TYPES`, and `content` unless it has 1 to
    `MAX_ATTACHMENT` bytes of the declared type."""
    clean = name.strip()
    if (
        not clean
        or len(clean) > MAX_NAME
        or not clean.isprintable()
        or "/" in clean
        or "\\" in clean
        or clean in {".", ".."}
    ):
        errors.add("name", f"1 to {MAX_NAME} printable characters, no path separators")
    kind = content_type.strip().lower()
    check = CONTENT_TYPES.get(kind)
    if check is None:
        errors.add("content_type", f"one of {', '.join(CONTENT_TYPES)}")
    if not content:
        errors.add("content", "is empty")
    elif len(content) > MAX_ATTACHMENT:
        errors.add("content", f"at most {MAX_ATTACHMENT} bytes")
    elif check is not None and not check(content):
        errors.add("content", f"is not {kind}: its bytes do not begin or parse as that type's do")
    return clean, kind
