"""Build the Preflight images with podman from the local stand-in base (python-base.sh).

    python deploy/docker/build_images.py [--python PYTHON] [IMAGE ...]

IMAGE: intake, benchmark, clearinghouse, notifier, console (deploy/docker/Dockerfile.service)
or worker (services/benchmark/Dockerfile.worker, which also takes the Helm CLI that
`make deploy-tools` builds, .cache/bin/helm, as its build context `helm`); all of them by
default. Prints one `IMAGE=NAME` line per image. Each image is tagged
`localhost/preflight-<image>:<key>`, <key> a digest of its Dockerfile, its build arguments, the
base image, every file of its build context and of its named build contexts, and is built only
when podman has no image of that tag: a rerun with nothing changed builds nothing. A build
reuses podman's cached layers, so one after a change of the sources builds only the Preflight
packages again: the layers of third-party dependencies change only with constraints.txt and the
packages' pyproject.toml files (see the Dockerfiles). A new build removes the image's older tags
and build stages unused for a day. podman reads
deploy/docker/containers.conf (CONTAINERS_CONF).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "deploy" / "docker" / "containers.conf"
SERVICE_DOCKERFILE = "deploy/docker/Dockerfile.service"
WORKER_DOCKERFILE = "services/benchmark/Dockerfile.worker"
# Image -> (its Dockerfile, its build arguments, the service folder it copies).
IMAGES: Mapping[str, tuple[str, Mapping[str, str], str]] = {
    "intake": (SERVICE_DOCKERFILE, {"SERVICE": "intake", "PORT": "50051"}, "services/intake"),
    "benchmark": (SERVICE_DOCKERFILE, {"SERVICE": "benchmark", "PORT": "50052"}, "services/benchmark"),
    "clearinghouse": (
        SERVICE_DOCKERFILE,
        {"SERVICE": "clearinghouse", "PORT": "50053"},
        "services/clearinghouse",
    ),
    "notifier": (SERVICE_DOCKERFILE, {"SERVICE": "notifier", "PORT": "50054"}, "services/notifier"),
    "console": (
        SERVICE_DOCKERFILE,
        {"SERVICE": "console", "PORT": "8080", "RUNTIME_PACKAGES": "gnupg"},
        "services/console",
    ),
    "worker": (WORKER_DOCKERFILE, {}, "services/benchmark"),
}
# What every image's build context holds besides its service folder (the Dockerfiles' COPY lines).
SHARED_CONTEXT = ("constraints.txt", "deploy/docker/requirements.py", "libs", "sdk/python")
# Image -> its named build contexts: name -> the one file each holds (`make deploy-tools` builds helm).
NAMED_CONTEXTS: Mapping[str, Mapping[str, Path]] = {"worker": {"helm": REPO / ".cache" / "bin" / "helm"}}


def podman_env() -> dict[str, str]:
    """The environment podman runs in: this repository's containers.conf."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def base_image(python: str) -> str:
    """The stand-in base image's name, built and imported first when missing (python-base.sh)."""
    script = REPO / "deploy" / "docker" / "python-base.sh"
    done = subprocess.run(
        [str(script), python], env=podman_env(), stdout=subprocess.PIPE, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def _ignored() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith(("#", "!"))]


def _context_files(folder: str, ignored: list[str]) -> Iterator[Path]:
    path = REPO / folder
    if path.is_file():
        yield path
        return
    for root, dirs, files in os.walk(path):
        relative = Path(root).relative_to(REPO)
        dirs[:] = sorted(d for d in dirs if not _matches(relative / d, ignored))
        for name in sorted(files):
            if not _matches(relative / name, ignored):
                yield Path(root) / name


def _matches(relative: Path, ignored: list[str]) -> bool:
    # The .dockerignore's exclusions below the top level (`**/tests/`, `**/*.py[cod]`, ...).
    name = relative.as_posix()
    return any(p.startswith("**/") and fnmatch.fnmatch(name, p) for p in ignored) or any(
        p.startswith("**/") and fnmatch.fnmatch(relative.name, p.removeprefix("**/")) for p in ignored
    )


def context_files(image: str) -> Iterator[Path]:
    """Every file of the repository that the image's build context holds, in a stable order."""
    ignored = _ignored()
    for folder in (*SHARED_CONTEXT, IMAGES[image][2]):
        yield from _context_files(folder, ignored)


def image_name(image: str, base: str) -> str:
    """`localhost/preflight-<image>:<key>`, <key> a digest of everything its build reads."""
    dockerfile, build_args, _ = IMAGES[image]
    digest = hashlib.sha256()
    digest.update(f"{dockerfile}\n{sorted(build_args.items())}\n{base}\n".encode())
    digest.update((REPO / dockerfile).read_bytes())
    for path in context_files(image):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for name, path in sorted(NAMED_CONTEXTS.get(image, {}).items()):
        digest.update(name.encode() + b"\0" + _named_context_file(path).read_bytes() + b"\0")
    return f"localhost/preflight-{image}:{digest.hexdigest()[:16]}"


def _named_context_file(path: Path) -> Path:
    if not path.is_file():
        raise SystemExit(f"{path.relative_to(REPO)} is missing: run `make deploy-tools`")
    return path


def build_arguments(image: str, base: str) -> list[str]:
    """The `podman build` options that build the image from a context laid out as this
    repository: its Dockerfile, its build arguments, and podman's layer cache (on by default, said
    here so that no environment turns it off), which a build after a change of the sources reuses
    for every layer of third-party dependencies."""
    dockerfile, build_args, _ = IMAGES[image]
    args = [f"--build-arg={k}={v}" for k, v in {"PYTHON_IMAGE": base, **build_args}.items()]
    return ["--layers", "--file", dockerfile, *args]


def build(image: str, base: str) -> str:
    """The image's name; built first unless podman has it."""
    name = image_name(image, base)
    env = podman_env()
    if subprocess.run(["podman", "image", "exists", name], env=env, check=False).returncode != 0:
        with tempfile.TemporaryDirectory() as contexts:
            # Each named context a folder of its one file: podman reads no more than it needs.
            named = []
            for context, path in sorted(NAMED_CONTEXTS.get(image, {}).items()):
                folder = Path(contexts, context)
                folder.mkdir()
                shutil.copy2(_named_context_file(path), folder / path.name)
                named.append(f"--build-context={context}={folder}")
            subprocess.run(
                ["podman", "build", "--quiet", *build_arguments(image, base), *named, "--tag", name, "."],
                cwd=REPO,
                env=env,
                stdout=sys.stderr,
                check=True,
            )
        _remove_older(name, env)
    return name


def _remove_older(name: str, env: Mapping[str, str]) -> None:
    """Remove the image's other tags and build stages unused for a day: every change of the
    sources makes a new tag, and each is hundreds of megabytes. An image a container still uses
    stays."""
    repository = name.rpartition(":")[0]
    listed = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", f"--filter=reference={repository}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    older = sorted(set(listed.stdout.split()) - {name})
    if older:
        subprocess.run(["podman", "rmi", *older], env=env, capture_output=True, check=False)
    prune = ["podman", "image", "prune", "--force", "--filter=until=24h"]
    subprocess.run(prune, env=env, capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="python3", help="the interpreter the base image copies")
    parser.add_argument("images", nargs="*", metavar="IMAGE", help=", ".join(IMAGES))
    options = parser.parse_args()
    if unknown := set(options.images) - set(IMAGES):
        parser.error(f"no such image: {', '.join(sorted(unknown))}")
    base = base_image(options.python)
    for image in options.images or IMAGES:
        print(f"{image}={build(image, base)}", flush=True)


if __name__ == "__main__":
    main()
