"""The architecture document and the decision records cite only what exists: every repository
path they name in backquotes, and every event type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from preflight_common.contracts import REQUIRED

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "docs" / "architecture.md", *(ROOT / "docs" / "adr").glob("*.md")])

CITED = re.compile(r"`([^`\s]+)`")
TOP_LEVEL = ("libs/", "services/", "sdk/", "deploy/", "tests/", "protos/", "docs/", "bench/", "scripts/")
# A CamelCase name ending like an event (what the bus carries is named for what happened).
EVENT_LIKE = re.compile(
    r"^(?:[A-Z][a-z0-9]+){2,}(?:Received|Changed|Withdrawn|Requested|Completed|Failed|Ended|Ready|"
    r"Published|Updated|Checkpoint)$"
)
EVENT_TYPES = {name.rsplit(".", 1)[1] for name in REQUIRED}


def cited(doc: Path) -> list[str]:
    return CITED.findall(doc.read_text())


def test_there_is_an_architecture_document_and_decision_records() -> None:
    assert (ROOT / "docs" / "architecture.md").is_file()
    assert len(DOCS) > 1, "no decision record in docs/adr/"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_path_exists(doc: Path) -> None:
    missing = []
    for text in cited(doc):
        path = text.rstrip(".,:;)")
        if not path.startswith(TOP_LEVEL) or any(c in path for c in "<>*{}$"):
            continue
        if not (ROOT / path).exists():
            missing.append(path)
    assert missing == [], f"{doc.relative_to(ROOT)} cites paths that do not exist"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_event_type_exists(doc: Path) -> None:
    unknown = sorted({t for t in cited(doc) if EVENT_LIKE.match(t) and t not in EVENT_TYPES})
    assert unknown == [], f"{doc.relative_to(ROOT)} cites event types the bus does not carry"


def test_the_architecture_document_links_every_decision_record() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    unlinked = [
        adr.name for adr in sorted((ROOT / "docs" / "adr").glob("*.md")) if f"adr/{adr.name}" not in text
    ]
    assert unlinked == []
