"""The `preflight` CLI against the embedded stack, every verb as the role it is for and as a role
that may not use it, through the client profiles the stack wrote (no connection flags).

Readable output is compared with the snapshots in sdk/python/tests/snapshots/ (ids, times and
digests replaced by placeholders); `PREFLIGHT_UPDATE_SNAPSHOTS=1` rewrites them."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from preflight.sdk import Preflight, load_profile
from preflight.sdk.cli import main
from preflight_testkit.stack import ROOT, RunningStack, submission_request, wait_until

pytestmark = pytest.mark.slow

SNAPSHOTS = ROOT / "sdk" / "python" / "tests" / "snapshots"
OUTPUTS: list[str] = []  # everything the CLI printed, checked for tokens at the end


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]


@pytest.fixture(scope="module", autouse=True)
def _profiles(stack: RunningStack) -> Iterator[None]:
    """The stack's profiles and nothing else: no user config, no PREFLIGHT_* from outside."""
    with pytest.MonkeyPatch.context() as patch:
        for variable in list(os.environ):
            if variable.startswith("PREFLIGHT_") and variable != "PREFLIGHT_UPDATE_SNAPSHOTS":
                patch.delenv(variable)
        patch.setenv("PREFLIGHT_STACK_DIR", str(stack.run_dir))
        patch.setenv("XDG_CONFIG_HOME", str(stack.run_dir / "no-user-config"))
        yield


def cli(*argv: str, profile: str | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = main([*(["--profile", profile] if profile else []), *argv], out, err)
    OUTPUTS.extend([out.getvalue(), err.getvalue()])
    return Result(code, out.getvalue(), err.getvalue())


def ok(*argv: str, profile: str | None = None) -> Result:
    result = cli(*argv, profile=profile)
    assert result.code == 0, f"preflight {' '.join(argv)}: {result.err}"
    return result


def refused(*argv: str, profile: str, code: str) -> None:
    """As `profile` the verb exits 1 with a one-line reason naming `code` and a hint."""
    result = cli(*argv, profile=profile)
    assert result.code == 1, (argv, result)
    assert result.out == ""
    (line,) = result.err.splitlines()
    assert line.startswith(f"preflight: {code}: ") and "--profile" in line, result.err


def _connect(stack: RunningStack, principal: str) -> Preflight:
    environ = {"PREFLIGHT_STACK_DIR": str(stack.run_dir), "XDG_CONFIG_HOME": str(stack.run_dir / "none")}
    return Preflight.from_profile(load_profile(principal, environ=environ))


def snapshot(name: str, text: str, replacements: dict[str, str], *, table: bool = False) -> None:
    """`text` with ids, times, digests and durations replaced matches the stored snapshot; a
    `table`'s rows are compared in sorted order (the service's order among equals is not fixed)."""
    for value, placeholder in replacements.items():
        text = text.replace(value, placeholder)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>", text)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text)
    text = re.sub(r"\b[0-9a-f]{12,}", "<hex>", text)
    text = re.sub(r"-?\d+d\d\dh|-?\d+h\d\dm", "<left>", text)
    if table:
        header, *rows = text.splitlines()
        text = "\n".join([header, *sorted(rows)]) + "\n"
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("PREFLIGHT_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from {path} (PREFLIGHT_UPDATE_SNAPSHOTS=1 rewrites it)"


@pytest.fixture(scope="module")
def submission(stack: RunningStack) -> Iterator[str]:
    with _connect(stack, "lab") as lab:
        sid = lab.intake.submit(submission_request(stack)).submission.submission_id
        wait_until(
            "REPORT_READY",
            lambda: lab.intake.get_submission(sid).status == 4,  # SUBMISSION_STATUS_REPORT_READY
            timeout=300,
        )
    yield sid


@pytest.fixture(scope="module")
def finding(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A finding the reviewer reported and validated, shared with the healthcare sector only."""
    path = tmp_path_factory.mktemp("finding") / "finding.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "title": "Heap overflow in libfoo's header parser",
                "description": "A crafted Content-Length header overflows a heap buffer.",
                "cwe_ids": ["CWE-787"],
                "affected_products": [
                    {"purl": "pkg:pypi/libfoo", "version_range": "vers:pypi/>=1.0.0|<1.4.2"}
                ],
                "tlp": "TLP_AMBER",
                "audience": {"sectors": ["healthcare"]},
                "request_id": "cli-e2e-finding",
            }
        )
    )
    reported = ok("--json", "finding", "report", "--file", str(path), profile="reviewer").json()
    finding_id = str(reported["finding"]["finding_id"])
    ok("finding", "triage", finding_id, "--state", "triaged", profile="reviewer")
    ok("finding", "triage", finding_id, "--state", "validated", profile="reviewer")
    return finding_id


def test_with_no_flags_the_stack_profile_is_the_lab(submission: str) -> None:
    reports = ok("--json", "report", "list").lines()
    assert submission in {r["submission_id"] for r in reports}
    assert ok("--json", "status", submission).json()["status"] == "SUBMISSION_STATUS_REPORT_READY"


def test_a_lab_reads_downloads_and_verifies_its_report(submission: str, tmp_path: Path) -> None:
    shown = ok("--json", "report", "show", "--submission", submission).json()
    assert shown["submission_id"] == submission and shown["tier"] and shown["signature"]
    report_id = shown["report_id"]
    assert {r["report_id"] for r in ok("--json", "report", "list").lines()} >= {report_id}
    snapshot(
        "report_show",
        ok("report", "show", report_id).out,
        {report_id: "<report>", submission: "<submission>", shown["signing_key_id"]: "<key>"},
    )

    download = tmp_path / "report.json"
    ok("report", "download", report_id, "-o", str(download))
    assert json.loads(download.read_text())["report_id"] == report_id
    verified = ok("report", "verify", "--file", str(download))
    assert f"report {report_id} (version 1) verifies" in verified.out
    assert (
        ok("--json", "report", "verify", "--submission", submission).json()["key_id"]
        == shown["signing_key_id"]
    )

    tampered = json.loads(download.read_text())
    tampered["tier"] = "TIER_0" if tampered["tier"] != "TIER_0" else "TIER_1"
    download.write_text(json.dumps(tampered))
    result = cli("report", "verify", "--file", str(download))
    assert result.code == 1
    assert result.err.startswith(f"preflight: report {report_id} does NOT verify: the signed report has tier")


def test_the_reviewer_queue_notes_signs_off_and_reissues(stack: RunningStack, submission: str) -> None:
    queue = ok("--json", "queue", profile="reviewer").lines()
    assert submission in [s["submission_id"] for s in queue]
    releases = [s["planned_release"] for s in queue]
    assert releases == sorted(releases)
    table = ok("queue", profile="reviewer").out.splitlines()
    assert table[0].split() == ["SUBMISSION", "DEADLINE", "LEFT", "STATUS", "MODEL"]
    assert any(submission in row and "REPORT_READY" in row for row in table[1:])

    report_id = ok("--json", "report", "show", "--submission", submission, profile="reviewer").json()[
        "report_id"
    ]
    refused("report", "note", report_id, "--text", "from the lab", profile="lab", code="PERMISSION_DENIED")
    refused("report", "sign-off", report_id, profile="lab", code="PERMISSION_DENIED")
    refused("report", "reissue", submission, profile="lab", code="PERMISSION_DENIED")
    note = ok(
        "--json", "report", "note", report_id, "--text", "scores as expected", profile="reviewer"
    ).json()
    assert note["text"] == "scores as expected" and note["note_id"]
    sign_off = ok("--json", "report", "sign-off", report_id, "--comment", "ok", profile="reviewer").json()
    assert sign_off["reviewer_id"] and sign_off["comment"] == "ok"
    with _connect(stack, "reviewer") as reviewer:
        report = reviewer.clearinghouse.get_report(report_id)
        assert [n.text for n in report.notes] == ["scores as expected"]  # nothing the lab tried
        assert len(report.sign_offs) == 1
    reissued = ok(
        "--json", "report", "reissue", submission, "--reason", "policy check", profile="reviewer"
    ).json()
    assert reissued["version"] == 2 and reissued["submission_id"] == submission


def test_jobs_of_a_submission(submission: str) -> None:
    jobs = ok("--json", "job", "list", "--submission", submission, profile="reviewer").lines()
    assert jobs and {j["submission_id"] for j in jobs} == {submission}
    assert {j["status"] for j in jobs} == {"JOB_STATUS_COMPLETED"}
    shown = ok("--json", "job", "show", jobs[0]["job_id"], profile="lab").json()
    assert shown["job_id"] == jobs[0]["job_id"]
    snapshot(
        "job_list",
        ok("job", "list", "--submission", submission, profile="reviewer").out,
        {submission: "<submission>"},
        table=True,
    )
    refused("job", "show", jobs[0]["job_id"], profile="operator_hospital", code="PERMISSION_DENIED")


def test_findings_as_reviewer_and_operators(stack: RunningStack, finding: str, tmp_path: Path) -> None:
    listed = ok("--json", "finding", "list", profile="reviewer").lines()
    assert finding in {f["finding_id"] for f in listed}
    assessed = ok(
        "--json",
        "finding",
        "assess",
        finding,
        "--cvss-v3",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        profile="reviewer",
    ).json()
    assert assessed["cvss_v3_score"] == 9.8
    shared = ok(
        "--json", "finding", "share", finding, "--tlp", "amber", "--sector", "healthcare", profile="reviewer"
    ).json()
    assert shared["tlp"] == "TLP_AMBER" and shared["audience"]["sectors"] == ["healthcare"]

    # The hospital (healthcare) sees it and reports its patch status; the water utility does not.
    assert finding in {
        f["finding_id"] for f in ok("--json", "finding", "list", profile="operator_hospital").lines()
    }
    assert ok("--json", "finding", "list", profile="operator_utility").out == ""
    refused("finding", "show", finding, profile="operator_utility", code="NOT_FOUND")
    refused(
        "finding",
        "patch-status",
        finding,
        "--status",
        "patched",
        profile="operator_utility",
        code="NOT_FOUND",
    )
    refused("finding", "export", finding, profile="operator_utility", code="NOT_FOUND")
    for verb in (
        ("triage", finding, "--state", "closed"),
        ("assess", finding, "--cwe", "CWE-79"),
        ("share", finding, "--tlp", "clear"),
        ("link", finding, "--kind", "duplicate-of", "--to", finding),
    ):
        refused("finding", *verb, profile="operator_hospital", code="PERMISSION_DENIED")
    patched = ok(
        "--json",
        "finding",
        "patch-status",
        finding,
        "--status",
        "patched",
        "--note",
        "v1.4.2",
        profile="operator_hospital",
    ).json()
    assert [p["status"] for p in patched["patch_statuses"]] == ["PATCH_STATUS_PATCHED"]
    with _connect(stack, "reviewer") as reviewer:
        seen = reviewer.clearinghouse.get_finding(finding)
        assert [p.organisation for p in seen.patch_statuses] == ["st-mary-hospital"]
        assert seen.state == 3 and list(seen.cwe_ids) == ["CWE-787"]  # VALIDATED, as the reviewer left it

    shown = ok("--json", "finding", "show", finding, profile="operator_hospital").json()
    assert shown["finding_id"] == finding and "evidence" not in shown
    advisory = tmp_path / "advisory.json"
    ok("finding", "export", finding, "--format", "csaf", "-o", str(advisory), profile="operator_hospital")
    assert json.loads(advisory.read_text())["document"]["category"] == "csaf_security_advisory"
    exported = ok("--json", "finding", "export", finding, "--format", "osv", profile="reviewer").json()
    assert exported["format"] == "EXPORT_FORMAT_OSV" and exported["document"]
    snapshot(
        "finding_show",
        ok("finding", "show", finding, profile="operator_hospital").out,
        {finding: "<finding>"},
    )

    # History: the reviewer sees every entry with its actor; the hospital sees the changes to what
    # it is shown, actors by role alone; the utility is told there is no such finding.
    reviewed = ok("--json", "finding", "history", finding, profile="reviewer").lines()
    assert reviewed[0]["action"] == "finding.reported" and all(e["actor_id"] for e in reviewed)
    hospital = ok("--json", "finding", "history", finding, profile="operator_hospital").lines()
    assert hospital and not any("actor_id" in e for e in hospital)
    assert "finding.reported" not in {e["action"] for e in hospital}
    refused("finding", "history", finding, profile="operator_utility", code="NOT_FOUND")
    snapshot("finding_history", ok("finding", "history", finding, profile="operator_hospital").out, {})


def test_link_a_duplicate(finding: str, tmp_path: Path) -> None:
    path = tmp_path / "again.json"
    path.write_text(
        json.dumps(
            {
                "title": "Heap overflow in libfoo's header parser (again)",
                "description": "The same overflow, reported a second time.",
                "cwe_ids": ["CWE-787"],
                "affected_products": [
                    {"purl": "pkg:pypi/libfoo", "version_range": "vers:pypi/>=1.0.0|<1.4.3"}
                ],
                "tlp": "TLP_AMBER",
                "audience": {"sectors": ["healthcare"]},
                "request_id": "cli-e2e-duplicate",
            }
        )
    )
    duplicate = ok("--json", "finding", "report", "--file", str(path), profile="reviewer").json()["finding"][
        "finding_id"
    ]
    linked = ok(
        "--json", "finding", "link", duplicate, "--kind", "duplicate-of", "--to", finding, profile="reviewer"
    ).json()
    assert linked["link"] == {"kind": "LINK_KIND_DUPLICATE_OF", "target_finding_id": finding}


def test_alerts_and_silences(stack: RunningStack, submission: str) -> None:
    alerts = wait_until(
        "the review_met alert",
        lambda: [
            a
            for a in ok("--json", "alert", "list", profile="reviewer").lines()
            if a["alert"]["subject_id"] == submission
        ],
        timeout=120,
    )
    alert_id = alerts[0]["alert"]["alert_id"]
    followed = ok("--json", "alert", "follow", "--after", "0", "--limit", "1", profile="reviewer").lines()
    assert len(followed) == 1 and int(followed[0]["sequence"]) >= 1
    refused("alert", "ack", alert_id, profile="operator_utility", code="NOT_FOUND")
    acked = ok("--json", "alert", "ack", alert_id, "--comment", "seen", profile="reviewer").json()
    assert acked["acknowledged"] is True
    assert alert_id not in {
        a["alert"]["alert_id"]
        for a in ok("--json", "alert", "list", "--unacknowledged", profile="reviewer").lines()
    }

    silence = ok(
        "--json",
        "silence",
        "create",
        "--match",
        f"subject_id={submission}",
        "--until",
        "+2h",
        "--comment",
        "maintenance",
        profile="reviewer",
    ).json()
    silence_id = silence["silence_id"]
    assert silence_id in {
        s["silence_id"] for s in ok("--json", "silence", "list", profile="reviewer").lines()
    }
    refused("silence", "expire", silence_id, profile="operator_utility", code="NOT_FOUND")
    expired = ok("--json", "silence", "expire", silence_id, profile="reviewer").json()
    assert expired["state"] == "SILENCE_STATE_EXPIRED"


def test_completion_scripts_name_every_noun_and_verb() -> None:
    bash = ok("completion", "bash").out
    snapshot("completion_bash", bash, {})
    for words in ('"finding" ) words=', "patch-status", "sign-off", "--profile"):
        assert words.split()[0].strip('"') in bash
    assert "complete -c preflight" in ok("completion", "fish").out
    assert "bashcompinit" in ok("completion", "zsh").out


def test_no_token_is_ever_printed(stack: RunningStack) -> None:
    printed = "\n".join(OUTPUTS)
    assert printed
    for token in stack.tokens.values():
        assert token not in printed
