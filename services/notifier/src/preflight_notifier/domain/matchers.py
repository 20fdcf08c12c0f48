"""Label matchers, as in Alertmanager: `kind="review_deadline"`, `severity!="info"`,
`kind=~"embargo_end|remediation_due"`.

Labels may carry several values (`sector`, `audience`): a positive matcher
(`=`, `=~`) holds when one value matches; a negative one (`!=`, `!~`) when
none does. Regular expressions are anchored at both ends.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

KNOWN_LABELS = frozenset(
    {"kind", "severity", "threshold", "stage", "subject_id", "alert_id", "tlp", "late", "sector", "audience"}
)
_SYNTAX = re.compile(r'^\s*([a-z_]+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


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
    _pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.label not in KNOWN_LABELS:
            raise ValueError(f"unknown label {self.label!r} (known: {', '.join(sorted(KNOWN_LABELS))})")
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            try:
                object.__setattr__(self, "_pattern", re.compile(self.value))
            except re.error as exc:
                raise ValueError(f"bad regular expression {self.value!r}: {exc}") from None

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
