"""The bake `validate` group (hadolint, zizmor in BuildKit) passes on the repository and fails on
a Dockerfile with a warning."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT
from tests.image.conftest import bake_env

INPUTS = ("pyproject.toml", "poetry.lock", "README.md", "VERSION.tmpl", ".dockerignore")
FOLDERS = ("docker", ".github", "scripts/local-images", "src", "tests/images")


def bake_validate(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "buildx", "bake", "-f", "docker-bake.hcl", "validate", "--progress=plain"],
        cwd=directory,
        env=bake_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def test_validate_group_passes_and_catches_a_dockerfile_warning(tmp_path: Path) -> None:
    result = bake_validate(ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    copy = tmp_path / "courier"
    copy.mkdir()
    for name in (*INPUTS, "docker-bake.hcl"):
        shutil.copy2(ROOT / name, copy / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "tests" / "images" / "bad.Dockerfile").write_text(
        "FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n"
    )
    failed = bake_validate(copy)
    assert failed.returncode != 0
    assert "DL3008" in failed.stdout + failed.stderr
