"""The CLI's command tree without a server: every verb documents itself with an example of its
own invocation, completion scripts cover the whole tree and are valid shell, and local mistakes
exit 2 naming what to fix."""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from preflight.sdk.cli import main, parser
from preflight.sdk.cli._core import UsageError, write_bytes
from preflight.sdk.cli.completion import script


def verbs(
    node: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    children = [a for a in node._actions if isinstance(a, argparse._SubParsersAction)]
    if not children and path:
        yield path, node
    for action in children:
        for name, child in action.choices.items():
            yield from verbs(child, (*path, name))


def test_every_verb_has_help_with_an_example_of_itself() -> None:
    found = list(verbs(parser()))
    assert len(found) > 30
    for path, verb in found:
        if path[0] == "token":  # `token create|revoke` share the `token` verb's example
            continue
        help_text = verb.format_help()
        example = help_text.split("Example:\n", 1)[1].splitlines()[0].strip()
        assert example.startswith(f"preflight {' '.join(path)}") or path[0] == "completion", (path, example)
        assert "--profile" in help_text and "--json" in help_text, path


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_covers_every_verb(shell: str) -> None:
    text = script(shell, parser())
    for path, _ in verbs(parser()):
        assert path[-1] in text, path


def test_the_bash_completion_completes_nouns_and_verbs(tmp_path: Path) -> None:
    # bash is part of every supported machine (the Makefile's SHELL): its absence is a failure.
    assert shutil.which("bash"), "bash is not installed"
    completion = tmp_path / "preflight.bash"
    completion.write_text(script("bash", parser()))

    def complete(*words: str) -> set[str]:
        line = " ".join(["preflight", *words])
        program = (
            f"source {completion}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; _preflight; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
        return set(result.stdout.split())

    assert {"report", "finding", "queue", "silence"} <= complete("")
    assert complete("finding", "pa") == {"patch-status"}
    assert complete("report", "verify", "--fi") == {"--file"}
    assert "--profile" in complete("--json", "alert", "follow", "--")


def test_local_mistakes_exit_2_saying_what_to_fix(tmp_path: Path) -> None:
    def run(*argv: str) -> tuple[int, str]:
        err = io.StringIO()
        code = main(["--target", "127.0.0.1:1", *argv], io.StringIO(), err)
        return code, err.getvalue()

    code, err = run("report", "show")
    assert code == 2 and "give a REPORT_ID or --submission SUBMISSION_ID" in err
    code, err = run("silence", "create", "--match", "nolabel", "--until", "+1h")
    assert code == 2 and "--match 'nolabel'" in err
    code, err = run("report", "verify", "--file", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err
    (tmp_path / "junk.json").write_text('{"tier": 3}')
    code, err = run("report", "verify", "--file", str(tmp_path / "junk.json"))
    assert code == 2 and "is not a downloaded report" in err
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe")
    code, err = run("report", "verify", "--file", str(tmp_path / "binary.json"))
    assert code == 2 and "is not a downloaded report" in err
    for days in ("nan", "inf", "1e12"):
        token = ("token", "create", "--principal-id", "a", "--role", "reviewer", "--organisation", "o")
        code, err = run(*token, "--expires-in-days", days)
        assert code == 2 and "--expires-in-days" in err, days
    for text in ("", "3\n", "- title: x\n"):
        (tmp_path / "finding.yaml").write_text(text)
        code, err = run("finding", "report", "--file", str(tmp_path / "finding.yaml"))
        assert code == 2 and "not a finding" in err, text
    with pytest.raises(SystemExit) as exit_:
        main(["finding", "triage", "F", "--state", "nonsense"], io.StringIO(), io.StringIO())
    assert exit_.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["queue", "--limit", "0"],
        ["list", "--limit", "-1"],
        ["job", "list", "--limit", "many"],
        ["alert", "follow", "--limit", "0"],
    ],
)
def test_a_limit_below_1_exits_2_before_anything_is_fetched(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--target", "127.0.0.1:1", *argv], io.StringIO(), io.StringIO())
    assert exit_.value.code == 2
    assert "argument --limit" in capsys.readouterr().err


def test_an_output_file_that_cannot_be_written_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "report.json"
    with pytest.raises(UsageError, match=f"cannot write {missing}"):
        write_bytes(str(missing), b"{}")


@pytest.mark.parametrize("timeout", ["0", "-5", "nan"])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_exits_2_naming_the_option(
    capsys: pytest.CaptureFixture[str], timeout: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--target", "127.0.0.1:1", "job", "list", f"--timeout={timeout}"], io.StringIO(), io.StringIO())
    assert exit_.value.code == 2
    assert "--timeout" in capsys.readouterr().err
