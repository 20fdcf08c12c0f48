"""Receivers' secrets come from the environment or from files, read when needed, never logged."""

from __future__ import annotations

import os
from pathlib import Path


def read_secret(env_name: str = "", file_path: str = "") -> bytes | None:
    """The secret in environment variable `env_name`, else in the file at `file_path` (trailing
    newline removed); None when neither is set or the file cannot be read."""
    if env_name and (value := os.environ.get(env_name)):
        return value.encode()
    if file_path:
        try:
            return Path(file_path).read_bytes().rstrip(b"\r\n")
        except OSError:
            return None
    return None
