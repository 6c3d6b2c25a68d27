"""The build takes its packages from the index it is given, not from a default: once built against
a local file index of the locked wheels, handed to the build as the named context `pip-index`,
with every HTTPS connection sent to a dead proxy (so no network is involved at all).

PIP_INDEX_URL goes in as bake sends it (a secret, read from the environment), PIP_EXTRA_INDEX_URL
as a build argument: both ways are exercised by the one build.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import platform
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.conftest import ROOT
from tests.image.conftest import bake_env, secret_args
from tests.release.conftest import DOCKERFILE, dockerfile_arg

DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens there
BAKE = ("docker", "buildx", "bake", "-f", "docker-bake.hcl")


def platform_args() -> list[str]:
    """pip's target options for this machine's platform, as the Dockerfile's install-wheels."""
    arch = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine()]
    glibc = int(dockerfile_arg("RUNTIME_GLIBC").split(".")[1])
    python = dockerfile_arg("PYTHON_VERSION")
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    args += ["--abi", "cp" + python.replace(".", "")]
    for minor in range(glibc, 4, -1):
        args += ["--platform", f"manylinux_2_{minor}_{arch}"]
    return [*args, "--platform", f"manylinux2014_{arch}"]


def pip_download(destination: Path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(destination), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"pip download failed:\n{result.stderr[-3000:]}"


def simple_index(files: Path, root: Path) -> None:
    """A PEP 503 index at `root` of the wheels in `files` (links carry their sha256)."""
    projects: dict[str, list[Path]] = {}
    for wheel in sorted(files.glob("*.whl")):
        name = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        projects.setdefault(name, []).append(wheel)
    for name, wheels in projects.items():
        folder = root / name
        folder.mkdir(parents=True)
        links = "".join(
            f'<a href="../../files/{html.escape(w.name)}#sha256='
            f'{hashlib.sha256(w.read_bytes()).hexdigest()}">{html.escape(w.name)}</a>\n'
            for w in wheels
        )
        (folder / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")


@pytest.fixture
def local_index(tmp_path: Path) -> Path:
    """main/: the locked runtime wheels (from the build's own exported requirements);
    extra/: pinned Poetry and its export plugin, with their dependencies."""
    requirements = tmp_path / "requirements"
    base = bake_env().get("BUILD_IMAGE")
    result = subprocess.run(
        [
            "docker", "buildx", "build", "--quiet", "--target", "requirements",
            "--output", f"type=local,dest={requirements}", "-f", str(DOCKERFILE),
            *(["--build-arg", f"BUILD_IMAGE={base}"] if base else []),
            *secret_args(), ".",
        ],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"exporting the requirements failed:\n{result.stderr[-3000:]}"
    text = (requirements / "requirements.txt").read_text()
    assert not re.search(r"^\s*--(index-url|extra-index-url|find-links)", text, re.M), (
        "the exported requirements name an index: PIP_INDEX_URL could not choose"
    )
    index = tmp_path / "pip-index"
    for part, args in (
        ("main", ["--no-deps", "--require-hashes", "-r", str(requirements / "requirements.txt")]),
        (
            "extra",
            [
                f"poetry=={dockerfile_arg('POETRY_VERSION')}",
                f"poetry-plugin-export=={dockerfile_arg('POETRY_EXPORT_VERSION')}",
            ],
        ),
    ):
        files = index / part / "files"
        pip_download(files, *platform_args(), *args)
        simple_index(files, index / part / "simple")
    return index


@pytest.fixture
def tag(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"courier-pipindex:test-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(name, force=True)


def bake_image(overrides: dict[str, object], folder: Path, **env: str) -> tuple[int, str]:
    """Bake the image target with `overrides` as a second bake file; return code and log."""
    override_file = folder / "override.json"
    override_file.write_text(json.dumps({"target": {"image": overrides}}))
    result = subprocess.run(
        [*BAKE, "-f", str(override_file), "image", "--progress=plain"],
        cwd=ROOT,
        env=bake_env(**env),
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_build_takes_every_package_from_the_given_index(
    local_index: Path, tag: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    offline: dict[str, object] = {
        "tags": [tag],
        "args": {"HTTPS_PROXY": DEAD_PROXY, "https_proxy": DEAD_PROXY},
        # pip must really run in both steps that download, not come from the cache.
        "no-cache-filter": ["poetry", "venv"],
    }
    # The control: without the local index, pip's default index is out of reach.
    returncode, log = bake_image(offline, tmp_path)
    assert returncode != 0, "the dead proxy let the build reach an index"
    assert "ProxyError" in log, log[-3000:]

    with_index = {
        **offline,
        "contexts": {"pip-index": str(local_index)},
        "args": {**offline["args"], "PIP_EXTRA_INDEX_URL": "file:///pip-index/extra/simple"},  # type: ignore[dict-item]
    }
    returncode, log = bake_image(
        with_index, tmp_path, PIP_INDEX_URL="file:///pip-index/main/simple"
    )
    assert returncode == 0, f"build against the local index failed:\n{log[-5000:]}"
    looking = re.findall(r"Looking in indexes: (.*)", log)
    print(f"\npip steps: {looking}")
    assert len(looking) == 2, "pip did not run in the poetry and venv steps"
    for line in looking:
        assert line.strip() == "file:///pip-index/main/simple, file:///pip-index/extra/simple"
    output = docker_client.containers.run(tag, ["version"], remove=True)
    assert bytes(output).decode().startswith("courier ")
    # The index URLs went in as a secret and an argument: neither is in the image's settings.
    config = str(docker_client.images.get(tag).attrs["Config"])
    assert "pip-index" not in config
