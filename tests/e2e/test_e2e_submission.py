"""One submission through the whole embedded stack: real processes, a real broker, real receivers."""

from __future__ import annotations

from pathlib import Path

import pytest
from preflight.intake.v1 import intake_pb2
from preflight.sdk import Client, Preflight, load_profile
from preflight_clearinghouse.bootstrap import load_policy
from preflight_testkit.stack import RunningStack, submission_request, wait_until

pytestmark = pytest.mark.slow

# The scripted reference model answers sample N correctly unless N is a multiple of 3
# (services/benchmark/README.md); with the shipped catalog that gives these accuracies.
SCRIPTED = {
    "security_knowledge": 35 / 52,
    "vulnerability_detection": 22 / 32,
    "exploit_generation": 7 / 10,
    "vulnerability_discovery": 2 / 3,
}


def _connect(stack: RunningStack, principal: str) -> Preflight:
    """The stack as `principal` sees it, through the client profile the stack wrote."""
    environ = {"PREFLIGHT_STACK_DIR": str(stack.run_dir), "XDG_CONFIG_HOME": str(stack.run_dir / "no-config")}
    return Preflight.from_profile(load_profile(principal, environ=environ))


def test_a_submission_reaches_report_ready_with_the_tier_its_scores_imply(stack: RunningStack) -> None:
    tokens = stack.tokens
    with Client(stack.target("intake"), token=tokens["lab"]) as lab:
        submission = lab.submit(submission_request(stack)).submission
        sid = submission.submission_id
        wait_until(
            "REPORT_READY",
            lambda: lab.get_submission(sid).status == intake_pb2.SUBMISSION_STATUS_REPORT_READY,
            timeout=240,
        )

    with (
        _connect(stack, "lab") as lab_deployment,
        _connect(stack, "reviewer") as reviewer,
        _connect(stack, "operator_hospital") as hospital,
        _connect(stack, "operator_utility") as utility,
    ):
        report = lab_deployment.clearinghouse.get_report(submission_id=sid)
        scores = {s.capability: s for s in report.scores}
        assert set(scores) == set(SCRIPTED)
        for capability, expected in SCRIPTED.items():
            assert scores[capability].score == pytest.approx(expected, abs=1e-3), capability
        policy = load_policy(None)
        implied = policy.highest(
            [policy.capability_tier(s.capability, s.score, s.ci_high) for s in report.scores]
        )
        assert report.tier == implied
        assert report.tier != policy.default_tier
        lab_deployment.clearinghouse.verify_report(report)

        candidates = [f for f in reviewer.clearinghouse.iter_findings() if f.source.submission_id == sid]
        assert candidates, "the discovery suite's candidate findings are in the clearinghouse"
        assert all(f.cwe_ids for f in candidates)
        # Unvalidated candidates reach no operator.
        for operator in (hospital, utility):
            seen = list(operator.clearinghouse.iter_findings())
            assert not {f.finding_id for f in seen} & {f.finding_id for f in candidates}

    def alerts() -> list[dict[str, object]]:
        bodies = [r["body"] for r in stack.sink("webhook")]
        return [a for b in bodies for a in b.get("alerts", []) if a.get("subject_id") == sid]

    wait_until(
        "both alerts at the webhook",
        lambda: {"review_deadline", "review_met"} <= {str(a["kind"]) for a in alerts()},
        timeout=60,
    )
    deadline_alert = next(a for a in alerts() if a["kind"] == "review_deadline")
    assert deadline_alert["threshold"] == "T-7d" and deadline_alert["late"] is True
    assert all(r["signature_verified"] for r in stack.sink("webhook"))

    def subjects_to_the_lab() -> set[str]:
        return {
            m["subject"]
            for m in stack.sink("mail")
            if sid in m["subject"] and "ada@example-lab.test" in m["to"]
        }

    wait_until(
        "both e-mails to the lab's contact",
        lambda: (
            any("Review deadline" in s for s in subjects_to_the_lab())
            and any("Review report issued" in s for s in subjects_to_the_lab())
        ),
        timeout=60,
    )


def _descendants(root: int) -> list[int]:
    """The processes below `root` (children, their children…), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [root]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def test_no_process_of_the_stack_holds_a_secret_in_its_environment_or_arguments(stack: RunningStack) -> None:
    """Every process the stack runs (services, the local benchmark's workers, the reference model,
    the sinks, the broker) got its secrets as files: none is in its environment or its arguments
    (both readable by any process of the same user in /proc)."""
    keys = {value for name, value in stack.secrets.items() if not name.endswith("_ID")}
    keys |= {value.partition(":")[2] for value in keys if ":" in value}  # key material of id:key lists
    passwords = [
        *(stack.run_dir / "kafka-credentials").glob("*.password"),
        stack.run_dir / "kafka/admin.password",
    ]
    hidden = keys | set(stack.tokens.values()) | {p.read_text().strip() for p in passwords}
    pids = _descendants(int(stack.state["supervisor_pid"]))
    assert set(stack.state["pids"].values()) <= set(pids)
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # ended meanwhile
        for entry in environ:
            name = entry.partition("=")[0]
            assert not any(secret in entry for secret in hidden), f"pid {pid}: {name} holds a secret"
        for position, arg in enumerate(argv):
            assert not any(secret in arg for secret in hidden), f"pid {pid}: argument {position} is a secret"
