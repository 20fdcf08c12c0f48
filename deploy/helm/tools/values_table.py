#!/usr/bin/env python3
"""Generate the values table of the chart README from values.yaml comments.

A value is documented by a "# -- text" comment right above its key (lines of
"# text" directly below that line continue it). The table goes between the
README markers "<!-- values:start -->" and "<!-- values:end -->".

    values_table.py deploy/helm/preflight            rewrite README.md
    values_table.py --check deploy/helm/preflight    exit 1 if README.md is stale
                                                     or a value is undocumented
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

START, END = "<!-- values:start -->", "<!-- values:end -->"
KEY_RE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.\-]+):(?:\s|$)")


def documented_keys(text: str) -> dict[str, str]:
    """Map dotted key path -> description, for keys with a "# --" comment."""
    docs: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    in_list_item_indent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None and stripped != "#":
                pending.append(stripped[1:].strip())
            continue
        if not stripped:
            pending = None
            continue
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("- "):
            in_list_item_indent = indent
            pending = None
            continue
        if in_list_item_indent is not None and indent > in_list_item_indent:
            continue  # keys inside list items belong to a documented list
        in_list_item_indent = None
        m = KEY_RE.match(line)
        if not m:
            pending = None
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group("key")))
        if pending is not None:
            docs[".".join(k for _, k in stack)] = " ".join(pending)
        pending = None
    return docs


def leaves(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        out: list[str] = []
        for k, v in values.items():
            out += leaves(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [prefix]


def undocumented(values: dict[str, Any], docs: dict[str, str]) -> list[str]:
    missing = []
    for leaf in leaves(values):
        parts = leaf.split(".")
        # A leaf is covered by its own doc or by a documented ancestor.
        if not any(".".join(parts[:i]) in docs for i in range(len(parts), 0, -1)):
            missing.append(leaf)
    return missing


def lookup(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node[part]
    return node


def type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    return "object"


def default_repr(v: Any) -> str:
    s = json.dumps(v, separators=(", ", ": "))
    if len(s) > 80:
        s = "see values.yaml"
    return "`" + s.replace("|", "\\|") + "`"


def table(chart: Path) -> str:
    text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(text)
    docs = documented_keys(text)
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for path, desc in docs.items():
        v = lookup(values, path)
        text = desc.replace("|", "\\|").replace("<", "&lt;")
        rows.append(f"| `{path}` | {type_name(v)} | {default_repr(v)} | {text} |")
    return "\n".join(rows)


def render_readme(chart: Path) -> str:
    readme = (chart / "README.md").read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"{chart / 'README.md'} lacks the {START} / {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table(chart)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("chart", type=Path)
    args = ap.parse_args(argv)
    text = (args.chart / "values.yaml").read_text()
    missing = undocumented(yaml.safe_load(text), documented_keys(text))
    for m in missing:
        print(f"undocumented value: {m}", file=sys.stderr)
    new = render_readme(args.chart)
    if args.check:
        stale = new != (args.chart / "README.md").read_text()
        if stale:
            print("README.md values table is stale: run deploy/helm/tools/values_table.py", file=sys.stderr)
        return 1 if (stale or missing) else 0
    (args.chart / "README.md").write_text(new)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
