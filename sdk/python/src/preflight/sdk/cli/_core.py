"""What every verb of the CLI shares: how a verb is declared, the connection, the output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO, TypeVar

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.sdk.config import load_profile, seconds
from preflight.sdk.deployment import Preflight
from preflight.sdk.manifest import ManifestError, parse_time

DEFAULT_TARGET = "localhost:50051"
T = TypeVar("T")


class UsageError(Exception):
    """A local mistake (bad option value, unreadable file); exit code 2."""


class Refused(Exception):
    """The call worked but its answer is a "no" (e.g. a report that does not verify); exit code 1."""


@dataclass(frozen=True)
class Verb:
    """One command: `preflight NOUN NAME …` (or `preflight NAME …` when it has no noun).

    `arguments` adds its options to its parser; `run` does the work and returns the exit code
    (None is 0). `example` is shown by `--help`.
    """

    name: str
    help: str
    example: str
    run: Callable[[Context, argparse.Namespace], int | None]
    arguments: Callable[[argparse.ArgumentParser], object] = lambda parser: None


@dataclass(frozen=True)
class Noun:
    """A group of verbs: `preflight NAME VERB …`."""

    name: str
    help: str
    verbs: Sequence[Verb] = field(default_factory=tuple)


class Context:
    """What a verb works with: the deployment (connected on first use) and the output."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args, self.out, self.err, self.as_json = args, out, err, bool(args.json)
        self._preflight: Preflight | None = None
        self.hints = True
        """Whether an error may be followed by a hint about the connection options (not when the
        verb reaches something else, such as the event bus)."""

    @cached_property
    def preflight(self) -> Preflight:
        """The deployment the selected profile (with the connection flags over it) names."""
        args = self.args
        profile = load_profile(args.profile)
        changes: dict[str, Any] = {}
        if args.target:
            changes |= {"target": args.target, "targets": {}}
        if args.token_file:
            read_bytes(args.token_file)  # says which file cannot be read, before connecting
            changes |= {"token_file": str(Path(args.token_file).resolve())}
        for option in ("ca_file", "cert_file", "key_file"):
            if getattr(args, option):
                changes[option] = str(Path(getattr(args, option)).resolve())
        if args.tls:
            changes["tls"] = True
        if args.timeout is not None:
            changes["timeout"] = args.timeout
        profile = replace(profile, **changes)
        if not profile.addresses():
            profile = replace(profile, target=DEFAULT_TARGET)
        self._preflight = Preflight.from_profile(profile)
        return self._preflight

    def close(self) -> None:
        if self._preflight is not None:
            self._preflight.close()

    def show(self, message: Message, text: Callable[[], str]) -> None:
        """One message: its JSON (proto field names) with --json, else `text()`."""
        print(as_json(message) if self.as_json else text(), file=self.out, flush=True)

    def table(self, messages: Iterable[T], columns: Sequence[tuple[str, Callable[[T], str]]]) -> None:
        """Many messages: one JSON object a line with --json, else a table with a header row."""
        if self.as_json:
            for message in messages:
                print(as_json(message), file=self.out, flush=True)  # type: ignore[arg-type]
            return
        rows = [[cell(message) for _, cell in columns] for message in messages]
        widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, (header, _) in enumerate(columns)]
        for row in [[header for header, _ in columns], *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=self.out)

    def note(self, text: str) -> None:
        """A remark for the person at the terminal (stderr, never part of the output)."""
        print(text, file=self.err)


def as_json(message: Message) -> str:
    return json.dumps(MessageToDict(message, preserving_proto_field_name=True), sort_keys=True)


class Choice:
    """A protobuf enum as the CLI spells it: lower case, without the enum's prefix."""

    def __init__(self, enum: Any) -> None:
        first = enum.keys()[0]
        self.enum, self.prefix = enum, first[: first.rindex("UNSPECIFIED")]

    @property
    def choices(self) -> list[str]:
        return [n.removeprefix(self.prefix).lower().replace("_", "-") for n in self.enum.keys()[1:]]

    def value(self, name: str | None) -> Any:
        """The enum's value of `name`; 0 (unspecified) for None."""
        return self.enum.Value(self.prefix + name.upper().replace("-", "_")) if name else 0

    def name(self, value: int) -> str:
        try:
            return str(self.enum.Name(value)).removeprefix(self.prefix)
        except ValueError:
            return str(value)


def when(ts: Timestamp) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def time_option(value: str, option: str) -> datetime:
    try:
        return parse_time(value, option)
    except ManifestError as exc:
        raise UsageError(f"{option}: {exc.message}") from None


def read_bytes(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def write_bytes(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def take(items: Iterator[T], limit: int) -> list[T]:
    taken: list[T] = []
    for item in items:
        taken.append(item)
        if len(taken) == limit:
            break
    return taken


def fields(rows: Sequence[tuple[str, str]]) -> str:
    """`name  value` lines, the names aligned."""
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def count(text: str) -> int:
    """A `--limit`: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def limit_option(parser: argparse.ArgumentParser, default: int = 50) -> None:
    parser.add_argument("--limit", type=count, default=default, help=f"at most this many (default {default})")


def id_argument(what: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(what.replace("-", "_"), metavar=what.upper())

    return add


def connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options that say where the deployment is and who you are to it, and how to print.

    With `suppress` (the copy every verb accepts after its name) an option is only set when
    given, so it never resets what was given before the verb."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--profile",
        default=default(None),
        help="the profile to use (env PREFLIGHT_PROFILE; see `preflight.sdk.config`)",
    )
    parser.add_argument(
        "--target", default=default(None), help="host:port of every service (env PREFLIGHT_TARGET)"
    )
    parser.add_argument(
        "--token-file", default=default(None), help="file holding the bearer token (env PREFLIGHT_TOKEN_FILE)"
    )
    parser.add_argument(
        "--tls", action="store_true", default=default(False), help="use TLS with the system's CAs"
    )
    parser.add_argument("--ca-file", default=default(None), help="CA certificate to trust (PEM); implies TLS")
    parser.add_argument("--cert-file", default=default(None), help="client certificate for mTLS (PEM)")
    parser.add_argument("--key-file", default=default(None), help="client private key for mTLS (PEM)")
    parser.add_argument(
        "--timeout", type=seconds, default=default(None), help="seconds per call (profile's; 10)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print JSON (a line per item for lists and streams)",
    )


def common_options() -> argparse.ArgumentParser:
    """A parent parser with the connection options, for every verb's parser."""
    parser = argparse.ArgumentParser(add_help=False)
    connection_options(parser, suppress=True)
    return parser


def spelling(value: str) -> str:
    """An enum option as given (`REPORT_READY`, `report-ready`) in the CLI's spelling."""
    return value.lower().replace("_", "-")
