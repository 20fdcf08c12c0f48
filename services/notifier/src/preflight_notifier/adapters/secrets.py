"""Receivers' secrets come from files, read when needed (a rotated secret is used at the next
delivery), never logged; a secret is never an environment variable."""

from __future__ import annotations

from pathlib import Path


def read_secret(file_path: str) -> bytes | None:
    """The secret in the file at `file_path` (trailing newline removed); None when no file is
    named, it cannot be read or it is empty (an empty key signs nothing anyone can trust)."""
    if file_path:
        try:
            return Path(file_path).read_bytes().rstrip(b"\r\n") or None
        except OSError:
            return None
    return None
