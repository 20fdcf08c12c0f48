"""Static checks of the service images' Dockerfiles (no Docker engine needed)."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from preflight_testkit.checkout import load_script

REPO = Path(__file__).resolve().parents[2]

SERVICE_DOCKERFILE = "deploy/docker/Dockerfile.service"
WORKER_DOCKERFILE = "services/benchmark/Dockerfile.worker"
SERVICES = ("intake", "benchmark", "clearinghouse", "notifier", "console")
# Image -> (its Dockerfile, its build args, the package directory whose console script it runs).
IMAGES = {
    **{
        service: (SERVICE_DOCKERFILE, {"SERVICE": service}, f"services/{service}", f"preflight-{service}")
        for service in SERVICES
    },
    "worker": (WORKER_DOCKERFILE, {}, "services/benchmark", "preflight-worker"),
}
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cc|libc6-dev|python3-dev)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(path: Path, build_args: dict[str, str] | None = None) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined and `build_args`
    (``--build-arg`` values) substituted where they are used."""
    text = re.sub(r"\\\n", " ", path.read_text())
    for name, value in (build_args or {}).items():
        text = re.sub(rf"\$\{{{name}\}}|\${name}\b", value, text)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k] = v.strip('"')
        elif op == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert m, line
            base = re.sub(r"\$\{?(\w+)\}?", lambda g: args.get(g.group(1), g.group(0)), m.group(1))
            stages.append(Stage(base=base, name=m.group(2)))
        else:
            assert stages, f"{path}: {op} before FROM"
            stages[-1].instructions.append((op, rest))
    return args, stages


def exec_form(value: str) -> list[str]:
    import json

    v = json.loads(value)
    assert isinstance(v, list) and all(isinstance(x, str) for x in v)
    return v


@pytest.fixture(params=sorted(IMAGES))
def image(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def stages_of(image: str) -> list[Stage]:
    dockerfile, build_args, _, _ = IMAGES[image]
    return parse(REPO / dockerfile, build_args)[1]


def test_dockerfile_exists_for_every_image(image: str) -> None:
    assert (REPO / IMAGES[image][0]).is_file()


def test_the_services_share_one_dockerfile_and_the_worker_has_its_own() -> None:
    assert {dockerfile for dockerfile, *_ in IMAGES.values()} == {SERVICE_DOCKERFILE, WORKER_DOCKERFILE}
    assert sorted(p.parent.name for p in REPO.glob("services/*/Dockerfile")) == []


def test_multi_stage_with_slim_python_311_final(image: str) -> None:
    stages = stages_of(image)
    assert len(stages) >= 2, "multi-stage: a builder stage and a runtime stage"
    final = stages[-1]
    assert re.match(r"^(docker\.io/(library/)?)?python:3\.11[.\d]*-slim", final.base), final.base
    builder_names = {s.name for s in stages[:-1]}
    # Besides the build stages, only the named build contexts the image build passes (no image).
    build_images = load_script("preflight_build_images", "deploy/docker/build_images.py")
    sources = builder_names | set(build_images.NAMED_CONTEXTS.get(image, {}))
    copies = [rest for op, rest in final.instructions if op == "COPY" and "--from=" in rest]
    assert copies, "the runtime stage copies the built environment from the builder"
    assert all(re.search(r"--from=(\S+)", c).group(1) in sources for c in copies)  # type: ignore[union-attr]


def test_wheels_built_from_the_monorepo(image: str) -> None:
    stages = stages_of(image)
    _, _, pkg_dir, _ = IMAGES[image]
    builder = "\n".join(f"{op} {rest}" for s in stages[:-1] for op, rest in s.instructions)
    assert re.search(r"COPY\s+libs/", builder), "shared libs come from the build context (repo root)"
    assert re.search(r"COPY\s+sdk/python/", builder) and "./sdk/python" in builder, (
        "preflight-common needs preflight-sdk, which comes from the monorepo too"
    )
    assert re.search(rf"COPY\s+{re.escape(pkg_dir)}/", builder)
    assert "pip wheel" in builder
    assert re.search(r"COPY\s+constraints\.txt", builder) and "-c constraints.txt" in builder, (
        "third-party versions pinned by the repository's constraints"
    )


def test_runtime_stage_is_non_root_without_compilers(image: str) -> None:
    stages = stages_of(image)
    final = stages[-1]
    users = [rest for op, rest in final.instructions if op == "USER"]
    assert users, "USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric non-root UID (runAsNonRoot can verify it)"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    for op, rest in final.instructions:
        if op == "RUN":
            assert not ("install" in rest and COMPILERS.search(rest)), (
                f"compiler installed in runtime: {rest}"
            )


def test_entrypoint_is_a_declared_console_script(image: str, require) -> None:
    stages = stages_of(image)
    entry = [rest for op, rest in stages[-1].instructions if op == "ENTRYPOINT"]
    assert entry, "ENTRYPOINT in the final stage"
    argv = exec_form(entry[-1])
    _, _, pkg_dir, expected = IMAGES[image]
    if argv == ["preflight-service"]:  # the shared Dockerfile links it to the service's script
        builder = " ".join(rest for s in stages[:-1] for _, rest in s.instructions)
        # In a folder the runtime stage copies to /opt/venv, whose bin/ is on its PATH.
        copied = [shlex.split(rest)[-2:] for op, rest in stages[-1].instructions if op == "COPY"]
        venv = [source for source, target in copied if target == "/opt/venv"]
        assert any(f'ln -s "{expected}" {folder}/bin/preflight-service' in builder for folder in venv)
    else:
        assert argv == [expected]
    pyproject = REPO / pkg_dir / "pyproject.toml"
    require(pyproject.exists(), f"{pyproject.relative_to(REPO)} does not exist yet")
    scripts = tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {})
    assert expected in scripts, f"{expected} is not in [project.scripts] of {pkg_dir}: {sorted(scripts)}"


def test_root_dockerignore_keeps_context_small() -> None:
    lines = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "**" and "!libs/" in lines and "!services/" in lines
    assert "**/tests/" in lines


def test_topics_script_ships_in_the_intake_image() -> None:
    """The chart's topic-provisioning hook runs preflight-topics from the intake image."""
    common = tomllib.loads((REPO / "libs/common/pyproject.toml").read_text())
    assert "preflight-topics" in common["project"]["scripts"]
    builder = " ".join(rest for s in stages_of("intake")[:-1] for _, rest in s.instructions)
    assert "./libs/common" in shlex.split(builder.replace('"', " "))


# A pip command that installs or fetches distributions (not `pip uninstall`).
PIP_FETCH = re.compile(r"\bpip\b.*\b(install|wheel|download)\b")
# What decides the third-party distributions: the files a COPY may take before they are installed.
DECLARATIONS = ("constraints.txt", "deploy/docker/requirements.py")


def copies_sources(instruction: str) -> bool:
    """Whether a COPY from the build context takes anything besides the dependency declarations
    (constraints.txt, the requirements script, pyproject.toml files)."""
    *sources, _ = [t for t in shlex.split(instruction) if not t.startswith("--")]
    return not all(s in DECLARATIONS or s.endswith("/pyproject.toml") for s in sources)


def test_third_party_dependencies_are_installed_before_any_source_is_copied(image: str) -> None:
    """A change of the sources rebuilds no layer that reaches a package index: every pip command
    that may (one without --no-index) runs before the first COPY of a source, so podman's layer
    cache keys the third-party distributions on constraints.txt and the pyproject.toml files alone,
    and the Preflight packages are installed from the sources with no index."""
    steps = [(op, rest) for stage in stages_of(image)[:-1] for op, rest in stage.instructions]
    first_source = next(i for i, (op, rest) in enumerate(steps) if op == "COPY" and copies_sources(rest))
    fetching = [
        (i, command)
        for i, (op, rest) in enumerate(steps)
        if op == "RUN"
        for command in rest.split("&&")
        if PIP_FETCH.search(command) and "--no-index" not in command
    ]
    assert fetching, "the third-party distributions are installed in the builder"
    late = [command.strip() for i, command in fetching if i > first_source]
    assert not late, f"reaches an index after the sources are copied: {late}"
    assert any("--no-index" in rest for op, rest in steps[first_source:] if op == "RUN")


def test_the_runtime_stage_copies_the_dependencies_from_a_stage_without_sources(image: str) -> None:
    """The runtime's first copy (the third-party distributions) comes from a stage that copies no
    source, in a layer of its own, so a build after a change of the sources reuses it as well."""
    stages = stages_of(image)
    named = {stage.name: stage for stage in stages[:-1]}
    copies = [rest for op, rest in stages[-1].instructions if op == "COPY" and "--from=" in rest]
    source = named[re.search(r"--from=(\S+)", copies[0]).group(1)]  # type: ignore[union-attr]
    lineage = [source]
    while lineage[-1].base in named:
        lineage.append(named[lineage[-1].base])
    assert not [
        rest for stage in lineage for op, rest in stage.instructions if op == "COPY" and copies_sources(rest)
    ]
    assert len(copies) >= 2, "the Preflight packages come in a copy of their own"


def test_the_requirements_script_lists_third_party_pins_and_build_requirements(tmp_path: Path) -> None:
    """deploy/docker/requirements.py: a pip installation report's distributions but the local
    folders, as pins; the pyproject.toml files' build requirements, each once."""
    requirements = load_script("preflight_image_requirements", "deploy/docker/requirements.py")
    report = tmp_path / "report.json"
    local = {"url": "file:///src/libs/common", "dir_info": {}}
    remote = {"url": "https://files.example/grpcio.whl", "archive_info": {"hash": "sha256=00"}}
    report.write_text(
        json.dumps(
            {
                "install": [
                    {"metadata": {"name": "preflight-common", "version": "0.1.0"}, "download_info": local},
                    {"metadata": {"name": "grpcio", "version": "1.85.1"}, "download_info": remote},
                    {"metadata": {"name": "PyYAML", "version": "6.0.3"}, "download_info": remote},
                ]
            }
        )
    )
    assert requirements.third_party(report) == ["grpcio==1.85.1", "PyYAML==6.0.3"]
    pyprojects = []
    for name, requires in {"a": ["hatchling==1.33.0"], "b": ["hatchling==1.33.0", "hatch-vcs"]}.items():
        pyprojects.append(tmp_path / name / "pyproject.toml")
        pyprojects[-1].parent.mkdir()
        pyprojects[-1].write_text(f"[build-system]\nrequires = {json.dumps(requires)}\n")
    assert requirements.build_requirements(pyprojects) == ["hatchling==1.33.0", "hatch-vcs"]
