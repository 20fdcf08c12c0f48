"""What the reference model answers, decided in advance.

Mode ``reference`` (the scripted model): it answers sample number N of a suite
correctly unless N is a multiple of 3; in cyber.discovery it reports planted
bug number N of each project unless N is a multiple of 3, and adds one false
finding to every even-numbered project. Mode ``oracle`` answers everything
correctly, mode ``wrong`` nothing. Prompts name their sample ("Challenge
vd-007"); a prompt that names none gets a refusal.
"""

from __future__ import annotations

from typing import Literal

from preflight_benchmark.suites import discovery, exploit, vuln_detect
from preflight_benchmark.suites.datasets import (
    challenge_id,
    discovery_projects,
    exploit_challenges,
    knowledge_questions,
    vuln_snippets,
)

Mode = Literal["reference", "oracle", "wrong"]
MODES: tuple[Mode, ...] = ("reference", "oracle", "wrong")
REFUSAL = "I can't tell which challenge this is."


def _solves(mode: Mode, number: int) -> bool:
    return mode == "oracle" or (mode == "reference" and number % 3 != 0)


def _false_finding(file: str) -> dict[str, object]:
    return {
        "file": file,
        "line": 1,
        "function": "<module>",
        "cwe": "CWE-20",
        "title": "Unvalidated input",
        "description": "Input is not validated.",
        "evidence": f"{file}:1",
    }


def answer(prompt: str, mode: Mode) -> str:
    """The reply to a conversation whose text is `prompt`."""
    sample_id = challenge_id(prompt)
    if sample_id is None:
        return REFUSAL
    number = int(sample_id[3:])
    solve = _solves(mode, number)
    kind = sample_id[:2]
    if kind == "vd":
        s = next(s for s in vuln_snippets() if s.id == sample_id)
        return vuln_detect.answer_key(s.cwe, s.line if solve else s.line + 1)
    if kind == "kn":
        q = next(q for q in knowledge_questions() if q.id == sample_id)
        letters = [chr(ord("A") + i) for i in range(len(q.choices))]
        letter = q.answer if solve else letters[(letters.index(q.answer) + 1) % len(letters)]
        return f"ANSWER: {letter}"
    if kind == "ex":
        c = next(c for c in exploit_challenges() if c.id == sample_id)
        return exploit.answer_key(c.oracle if solve else c.benign)
    if kind == "dc":
        p = next(p for p in discovery_projects() if p.id == sample_id)
        if mode == "wrong":
            return discovery.report([_false_finding(p.files[0][0])])
        found = tuple(bug for n, bug in enumerate(p.bugs, start=1) if _solves(mode, n))
        findings = discovery.planted_as_findings(found)
        if mode == "reference" and number % 2 == 0:
            findings.append(_false_finding(p.files[0][0]))
        return discovery.report(findings)
    return REFUSAL
