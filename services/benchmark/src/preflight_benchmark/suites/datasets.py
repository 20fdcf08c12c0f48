"""The shipped suites' data, read from files inside the package.

Every sample carries an id (e.g. ``vd-007``) that its prompt names as
"Challenge <id>", and its answer key. The answer keys serve the scorers, the
oracle solutions in the tests and the scripted reference model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

VULN_MARKER = "@@VULN@@"
BUG_MARKER = re.compile(r"\s*@@BUG (\d+)@@\s*$")
CHALLENGE = re.compile(r"Challenge ([a-z]{2}-\d{3})\b")


def _data(*parts: str) -> str:
    return resources.files("preflight_benchmark.suites").joinpath("data", *parts).read_text(encoding="utf-8")


def _yaml(*parts: str) -> list[dict[str, Any]]:
    loaded = yaml.safe_load(_data(*parts))
    if not isinstance(loaded, list):
        raise ValueError(f"{'/'.join(parts)}: expected a list")
    return loaded


def numbered(code: str) -> str:
    """The code with right-aligned 1-based line numbers, as models are shown it."""
    lines = code.rstrip("\n").split("\n")
    width = len(str(len(lines)))
    return "\n".join(f"{i:>{width}} | {line}" for i, line in enumerate(lines, start=1))


def challenge_id(text: str) -> str | None:
    """The sample id a prompt names ("Challenge vd-007"), if any."""
    found = CHALLENGE.search(text)
    return found.group(1) if found else None


@dataclass(frozen=True)
class VulnSnippet:
    id: str
    language: str
    file: str
    code: str
    cwe: str
    line: int


@cache
def vuln_snippets() -> tuple[VulnSnippet, ...]:
    """cyber.vuln-detect: snippets with one weakness each (marker stripped, line recorded)."""
    snippets = []
    for item in _yaml("vuln_detect", "snippets.yaml"):
        lines = item["code"].rstrip("\n").split("\n")
        marked = [i for i, line in enumerate(lines, start=1) if VULN_MARKER in line]
        if len(marked) != 1:
            raise ValueError(f"{item['id']}: exactly one line must carry {VULN_MARKER}")
        code = "\n".join(line.replace(VULN_MARKER, "").rstrip() for line in lines) + "\n"
        snippets.append(VulnSnippet(item["id"], item["language"], item["file"], code, item["cwe"], marked[0]))
    return tuple(snippets)


@dataclass(frozen=True)
class KnowledgeQuestion:
    id: str
    question: str
    choices: tuple[str, ...]
    answer: str


@cache
def knowledge_questions() -> tuple[KnowledgeQuestion, ...]:
    """cyber.knowledge: multiple-choice questions with the letter of the right choice."""
    return tuple(
        KnowledgeQuestion(q["id"], q["question"], tuple(q["choices"]), q["answer"])
        for q in _yaml("knowledge", "questions.yaml")
    )


@dataclass(frozen=True)
class ExploitChallenge:
    id: str
    target: str
    source: str
    goal: Literal["flag", "crash"]
    oracle: str
    benign: str


@cache
def exploit_challenges() -> tuple[ExploitChallenge, ...]:
    """cyber.exploit: target programs, what solving means, a solving and a non-solving input."""
    return tuple(
        ExploitChallenge(
            c["id"],
            c["target"],
            _data("exploit", "targets", c["target"] + ".txt"),
            c["goal"],
            c["oracle"],
            c["benign"],
        )
        for c in _yaml("exploit", "challenges.yaml")
    )


@dataclass(frozen=True)
class PlantedBug:
    file: str
    line: int
    function: str
    cwe: str
    title: str


@dataclass(frozen=True)
class DiscoveryProject:
    id: str
    project: str
    purl: str
    files: tuple[tuple[str, str], ...]
    bugs: tuple[PlantedBug, ...]


@cache
def discovery_projects() -> tuple[DiscoveryProject, ...]:
    """cyber.discovery: code bases with planted bugs (markers stripped, lines recorded)."""
    projects = []
    for item in _yaml("discovery", "projects.yaml"):
        files, lines_of = [], {}
        for name in item["files"]:
            clean = []
            for number, line in enumerate(_data("discovery", item["project"], name + ".txt").split("\n"), 1):
                marker = BUG_MARKER.search(line)
                if marker:
                    lines_of[int(marker.group(1))] = number
                    line = line[: marker.start()]
                clean.append(line)
            files.append((name, "\n".join(clean)))
        bugs = tuple(
            PlantedBug(bug["file"], lines_of[bug["n"]], bug["function"], bug["cwe"], bug["title"])
            for bug in item["bugs"]
        )
        projects.append(DiscoveryProject(item["id"], item["project"], item["purl"], tuple(files), bugs))
    return tuple(projects)
