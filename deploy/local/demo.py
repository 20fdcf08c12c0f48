"""`make demo`: one model submission through the whole embedded stack, as its users see it.

1. the stack comes up (`deploy/local/stack.py up`) if it is not running;
2. a lab submits examples/model.yaml with the `preflight` CLI (its release six days away, so the
   first deadline alert is due at once) and follows it with `preflight watch` until REPORT_READY;
3. the lab reads its signed review report and verifies the signature with the clearinghouse's
   published key;
4. a reviewer validates a vulnerability the model found and shares it (TLP:AMBER) with the
   healthcare sector: the hospital operator sees it, the water utility does not;
5. the alerts the notifier delivered to the local webhook and SMTP sinks are printed.

Exits non-zero if any step fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight.common.v1 import common_pb2
from preflight.sdk import (
    Preflight,
    PreflightError,
    ReportVerificationError,
    Transition,
    load_profile,
    verify_report,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
T = TypeVar("T")
CONNECTIONS = contextlib.ExitStack()


class DemoFailed(RuntimeError):
    pass


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 1.0) -> T:
    """Poll `probe` until it returns a value, printing progress so no wait is silent."""
    start = time.monotonic()
    last_note = start
    while True:
        value = probe()
        if value:
            return value
        now = time.monotonic()
        if now - start > timeout:
            raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        if now - last_note >= 10:
            print(f"  … still waiting for {what} ({now - start:.0f}s)", flush=True)
            last_note = now
        time.sleep(every)


def cli(args: list[str], env: dict[str, str], capture: bool = False) -> str:
    """`preflight ARGS` as the lab, as its profile in the stack's profile file says (`env`)."""
    result = subprocess.run(
        [str(BIN / "preflight"), "--profile", "lab", *args],
        env=env,
        text=True,
        capture_output=capture,
        check=False,
    )
    if result.returncode != 0:
        raise DemoFailed(f"`preflight {' '.join(args)}` failed ({result.returncode}): {result.stderr or ''}")
    return result.stdout if capture else ""


def connect(run_dir: Path, principal: str) -> Preflight:
    """The stack as `principal` sees it, from the client profiles the stack wrote (closed at exit)."""
    profile = load_profile(principal, environ={"PREFLIGHT_CONFIG": str(run_dir / "preflight.toml")})
    return CONNECTIONS.enter_context(Preflight.from_profile(profile))


def main() -> int:
    run_dir = Path(os.environ.get("PREFLIGHT_STACK_DIR") or ROOT / "run" / "stack")
    started = time.monotonic()
    step("1. the embedded stack")
    if (
        subprocess.run(
            [sys.executable, str(ROOT / "deploy/local/stack.py"), "up", "--run-dir", str(run_dir)],
            check=False,
        ).returncode
        != 0
    ):
        raise DemoFailed("the stack did not start")
    state = json.loads((run_dir / "stack.json").read_text())
    ports = state["ports"]
    # The CLI finds the lab's address and token file in the profile file the stack wrote, and in
    # nothing else: no other PREFLIGHT_* setting of the caller's and no user config file.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFLIGHT_")}
    env["PREFLIGHT_CONFIG"] = str(run_dir / "preflight.toml")

    step("2. a lab submits its model with the CLI")
    manifest = yaml.safe_load((ROOT / "examples/model.yaml").read_text())
    manifest["planned_release"] = "+6d"
    manifest["access_window"] = {"start": "+0d", "end": "+6d"}
    endpoint = manifest["access"]["endpoint"]
    endpoint["base_url"] = f"http://127.0.0.1:{ports['reference-model']}/v1"
    # The lab's key for the model is a file too (the one the stack gave the reference model),
    # never the CLI's environment.
    del endpoint["credential_env"]
    endpoint["credential_file"] = str(run_dir / "secrets" / "reference-model.key")
    manifest_path = run_dir / "demo-model.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    print(f"$ preflight submit {manifest_path}")
    submitted = json.loads(
        cli(
            ["--json", "submit", "--idempotency-key", f"demo-{uuid.uuid4()}", str(manifest_path)],
            env,
            capture=True,
        )
    )
    submission_id = submitted.get("submission_id") or submitted["submission"]["submission_id"]
    cli(["status", submission_id], env)

    print(f"\n$ preflight watch {submission_id}")
    watch = subprocess.Popen(
        [str(BIN / "preflight"), "--profile", "lab", "watch", submission_id],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    deadline = time.monotonic() + 600
    try:
        for line in watch.stdout:
            print(f"  {line.rstrip()}", flush=True)
            if "REPORT_READY" in line:
                break
            if time.monotonic() > deadline or "WITHDRAWN" in line:
                raise DemoFailed("the submission did not reach REPORT_READY")
        else:
            raise DemoFailed("`preflight watch` ended before REPORT_READY")
    finally:
        watch.terminate()
        watch.wait()

    step("3. the lab reads its signed review report")
    lab = connect(run_dir, "lab").clearinghouse
    report = lab.get_report(submission_id=submission_id)
    key = lab.get_signing_key(report.signing_key_id)
    print(
        f"report {report.report_id} v{report.version}: tier {report.tier} "
        f"(policy {report.policy_id} {report.policy_version})"
    )
    for score in report.scores:
        print(
            f"  {score.capability:<28} {score.score:.3f} ± {score.stderr:.3f}  "
            f"95% CI [{score.ci_low:.3f}, {score.ci_high:.3f}]  "
            f"({', '.join(score.suites)}; n={score.samples})"
        )
    for failed in report.failed_suites:
        print(f"  failed: {failed.suite_id} {failed.reason} {failed.message}")
    try:
        verify_report(report, key)
    except ReportVerificationError as exc:
        raise DemoFailed(f"the report does not verify: {exc}") from None
    print(f"signature: Ed25519, key {key.key_id} — verified over the report body")

    step("4. a reviewer validates a finding and shares it with the healthcare sector")
    reviewer = connect(run_dir, "reviewer").clearinghouse
    findings = wait_for(
        "candidate findings from the discovery suite",
        lambda: [f for f in reviewer.iter_findings() if f.source.submission_id == submission_id],
        timeout=60,
    )
    print(f"{len(findings)} candidate finding(s) from this submission; e.g.:")
    for finding in findings[:3]:
        print(
            f"  {finding.finding_id}  {finding.title}  CWE {', '.join(finding.cwe_ids)}  "
            f"state {ch_events.FindingState.Name(finding.state)}"
        )
    chosen = findings[0]
    shared = reviewer.set_finding_sharing(
        chosen.finding_id,
        common_pb2.TLP_AMBER,
        common_pb2.Audience(sectors=["healthcare"]),
        reason="affects hospital software",
    )
    for target in (ch_events.FINDING_STATE_TRIAGED, ch_events.FINDING_STATE_VALIDATED):
        shared = reviewer.transition_finding(
            chosen.finding_id,
            Transition(state=target),
            reason="demo review",
            expected_revision=shared.revision,
        )
    print(
        f"{chosen.finding_id}: {ch_events.FindingState.Name(shared.state)}, "
        "TLP:AMBER, audience sector healthcare"
    )
    for name in ("operator_hospital", "operator_utility"):
        visible = list(connect(run_dir, name).clearinghouse.iter_findings())
        ids = [f.finding_id for f in visible]
        print(f"  {name:<18} sees {len(ids)} finding(s){': ' + ', '.join(ids) if ids else ''}")
        if name == "operator_hospital" and chosen.finding_id not in ids:
            raise DemoFailed("the hospital operator does not see the finding shared with its sector")
        if name == "operator_utility" and ids:
            raise DemoFailed("the water utility sees a finding it is not cleared for")
        for finding in visible:
            print(f"    source shown to the operator: {finding.source.developer or '(withheld: no consent)'}")

    step("5. alerts delivered to the local webhook and SMTP sinks")

    def read(name: str) -> list[dict[str, Any]]:
        path = run_dir / "sinks" / f"{name}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def webhook_alerts() -> list[dict[str, Any]]:
        alerts = [alert for record in read("webhook") for alert in record["body"].get("alerts", [])]
        return [alert for alert in alerts if alert.get("subject_id") == submission_id]

    def kinds() -> set[str]:
        return {alert["kind"] for alert in webhook_alerts()}

    wait_for(
        "the deadline alert and the report-issued alert",
        lambda: {"review_deadline", "review_met"} <= kinds(),
        timeout=120,
    )
    for alert in webhook_alerts():
        late = " (late)" if alert.get("late") else ""
        print(f"  webhook, signature verified: [{alert['kind']} {alert['threshold']}{late}] {alert['title']}")

    def mails() -> list[dict[str, Any]]:
        return [mail for mail in read("mail") if submission_id in mail["subject"]]

    wait_for("the e-mails", lambda: len(mails()) >= 2, timeout=60)
    for mail in mails():
        print(f"  e-mail to {', '.join(mail['to'])}: {mail['subject']}")
    print(
        f"\nThe demo ran in {time.monotonic() - started:.0f}s. The stack is still up: `make down` stops it."
    )
    return 0


if __name__ == "__main__":
    try:
        with CONNECTIONS:
            sys.exit(main())
    except (DemoFailed, PreflightError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        sys.exit(1)
