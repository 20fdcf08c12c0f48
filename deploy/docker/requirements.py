"""What an image's dependency layer installs, read from the Preflight packages' declarations alone.

    python requirements.py third-party REPORT       one `name==version` line for each distribution
                                                    that pip's installation report (`pip install
                                                    --dry-run --report REPORT`) takes from an
                                                    index, leaving out the packages given as folders
    python requirements.py build PYPROJECT ...      the build requirements ([build-system] requires)
                                                    of the pyproject.toml files, each once

Runs in the images' builder stage, on the standard library only.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path


def third_party(report: Path) -> list[str]:
    """The pinned distributions the report installs that are not local folders (the monorepo's
    packages, which pip reports with `dir_info`), in the report's order."""
    installed = json.loads(report.read_text())["install"]
    return [
        f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in installed
        if "dir_info" not in item["download_info"]
    ]


def build_requirements(pyprojects: list[Path]) -> list[str]:
    """The build requirements the pyproject.toml files name, in first-seen order."""
    requirements: dict[str, None] = {}
    for pyproject in pyprojects:
        declared = tomllib.loads(pyproject.read_text())["build-system"]["requires"]
        requirements.update(dict.fromkeys(declared))
    return list(requirements)


def main(argv: list[str]) -> None:
    match argv:
        case ["third-party", report]:
            lines = third_party(Path(report))
        case ["build", *pyprojects] if pyprojects:
            lines = build_requirements([Path(p) for p in pyprojects])
        case _:
            sys.exit(__doc__)
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
