"""Label matchers, as in Alertmanager: `kind="review_deadline"`, `severity!="info"`,
`kind=~"embargo_end|remediation_due"`.

Labels may carry several values (`sector`, `audience`): a positive matcher
(`=`, `=~`) holds when one value matches; a negative one (`!=`, `!~`) when
none does. Regular expressions are anchored at both ends and use RE2 syntax
(as Alertmanager's do): matching takes time linear in the input, whatever the
pattern, so no silence or route can stall the notifier. A pattern is compiled
once per process (`compiled`), with its memory bounded by `RE2_MAX_MEMORY`.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2

KNOWN_LABELS = frozenset(
    {"kind", "severity", "threshold", "stage", "subject_id", "alert_id", "tlp", "late", "sector", "audience"}
)
_SYNTAX = re.compile(r'^\s*([a-z_]+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')
RE2_MAX_MEMORY = 8 << 20
"""Bytes RE2 may use for one compiled pattern; a pattern needing more is refused as invalid."""
COMPILED_CACHE_SIZE = 4096


def _options() -> Any:
    options = re2.Options()
    options.max_mem = RE2_MAX_MEMORY
    options.log_errors = False
    return options


_RE2_OPTIONS = _options()


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _program(pattern: str) -> Any | None:
    # A refusal is cached too: a stored silence that is not valid RE2 is read on every list and
    # dispatch pass, and refusing a large pattern costs as much as compiling it.
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error:
        return None


def compiled(pattern: str) -> Any:
    """The RE2 program for `pattern`, compiled (or refused) once; ValueError when it is not valid RE2."""
    program = _program(pattern)
    if program is None:
        raise ValueError("is not a valid RE2 regular expression")
    return program


class MatchOp(enum.StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"

    @property
    def negative(self) -> bool:
        return self in (MatchOp.NOT_EQUAL, MatchOp.NOT_REGEX)


@dataclass(frozen=True)
class Matcher:
    """One comparison of a label with a value. Raises ValueError for an unknown label or a bad regex."""

    label: str
    op: MatchOp
    value: str
    _pattern: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.label not in KNOWN_LABELS:
            raise ValueError(f"unknown label {self.label!r} (known: {', '.join(sorted(KNOWN_LABELS))})")
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            object.__setattr__(self, "_pattern", compiled(self.value))

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """`label<op>"value"` with op one of `=`, `!=`, `=~`, `!~`."""
        match = _SYNTAX.match(text)
        if match is None:
            raise ValueError(f'{text!r} is not a matcher like kind="review_deadline"')
        label, op, value = match.groups()
        return cls(label, MatchOp(op), value.replace('\\"', '"').replace("\\\\", "\\"))

    def _one(self, value: str) -> bool:
        if self._pattern is not None:
            return self._pattern.fullmatch(value) is not None
        return value == self.value

    def matches(self, labels: Mapping[str, Sequence[str]]) -> bool:
        values = labels.get(self.label, ())
        # A label without values compares as the empty string, as in Alertmanager.
        hit = any(self._one(v) for v in values) if values else self._one("")
        return not hit if self.op.negative else hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op.value}"{escaped}"'


def match_all(matchers: Sequence[Matcher], labels: Mapping[str, Sequence[str]]) -> bool:
    """Whether every matcher holds (vacuously true for none)."""
    return all(m.matches(labels) for m in matchers)
