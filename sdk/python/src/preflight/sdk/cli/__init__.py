"""`preflight`: the command line of Preflight for labs, reviewers and operators.

`preflight NOUN VERB` (`report`, `finding`, `job`, `alert`, `silence`, `completion`) or
`preflight VERB` for submissions (`submit`, `status`, `list`, `queue`, `watch`, …). Where the
deployment is and who you are come from the selected profile (`--profile`, see
`preflight.sdk.config`; after `make up` the embedded stack's), with --target, --token-file and
the TLS options over it. Output is readable text; --json prints JSON (one object per line for
lists and streams). Exit codes: 0 success, 1 the service refused or failed the call (or a report
does not verify), 2 a usage, configuration or manifest error.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from preflight.sdk.cli import alerts, findings, intake, jobs, reports
from preflight.sdk.cli._core import (
    Context,
    Refused,
    UsageError,
    Verb,
    common_options,
    connection_options,
)
from preflight.sdk.cli.completion import COMPLETION
from preflight.sdk.config import ConfigError
from preflight.sdk.errors import PreflightError
from preflight.sdk.manifest import ManifestError

NOUNS = (reports.NOUN, findings.NOUN, jobs.NOUN, alerts.ALERTS, alerts.SILENCES, COMPLETION)
EXIT_CODES = "Exit codes: 0 success, 1 the service refused or failed the call, 2 usage, configuration error."

_HINTS = {
    "UNAUTHENTICATED": (
        "check --token-file, PREFLIGHT_TOKEN_FILE or the profile's token_file"
        " (missing, wrong, expired, revoked?)"
    ),
    "UNAVAILABLE": (
        "the service could not be reached: check --target / PREFLIGHT_TARGET, the profile and TLS options"
    ),
    "ALREADY_EXISTS": "give a new idempotency_key (or --idempotency-key) to submit a different request",
    "PERMISSION_DENIED": "your role may not do this: use the profile of a principal who may (--profile)",
    "NOT_FOUND": "check the id; you may also not be allowed to see it (--profile)",
}


def _add_verb(commands: argparse._SubParsersAction[argparse.ArgumentParser], verb: Verb) -> None:
    parser = commands.add_parser(
        verb.name,
        help=verb.help,
        description=verb.help[0].upper() + verb.help[1:] + ".",
        epilog=f"Example:\n  {verb.example}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_options()],
    )
    verb.arguments(parser)
    parser.set_defaults(verb=verb)


def parser() -> argparse.ArgumentParser:
    """The whole command tree (also what shell completion is generated from)."""
    root = argparse.ArgumentParser(
        prog="preflight",
        description="Preflight: pre-release cybersecurity review of frontier AI models.",
        epilog=f"Example:\n  preflight queue\n  preflight report verify --submission ID\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connection_options(root, suppress=False)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in intake.VERBS:
        _add_verb(commands, verb)
    for noun in NOUNS:
        group = commands.add_parser(
            noun.name, help=noun.help, description=noun.help[0].upper() + noun.help[1:] + "."
        )
        verbs = group.add_subparsers(dest="verb_name", required=True, metavar="VERB")
        for verb in noun.verbs:
            _add_verb(verbs, verb)
    return root


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    stdout, stderr = out or sys.stdout, err or sys.stderr
    args = parser().parse_args(argv)
    ctx = Context(args, stdout, stderr)
    try:
        return args.verb.run(ctx, args) or 0
    except (ManifestError, UsageError, ConfigError) as exc:
        kind = "manifest error: " if isinstance(exc, ManifestError) else ""
        print(f"preflight: {kind}{exc}", file=stderr)
        return 2
    except Refused as exc:
        print(f"preflight: {exc}", file=stderr)
        return 1
    except PreflightError as exc:
        # One line says what happened and what to check; invalid fields follow, one a line.
        hint = _HINTS.get(exc.code.name) if ctx.hints else None
        print(f"preflight: {exc.code.name}: {exc.message}" + (f" ({hint})" if hint else ""), file=stderr)
        for violation in exc.field_violations:
            print(f"  - {violation.field}: {violation.description}", file=stderr)
        return 1
    finally:
        ctx.close()
