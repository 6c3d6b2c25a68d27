"""`docker compose` driven from pytest, the way a user runs it: a project directory holding a copy
of the repository's compose.yaml and the user's own `.env`, under a unique project name."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from courier.testing.logs import parse_json_lines
from tests.conftest import ROOT

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Variables compose.yaml reads (and compose's own): never inherited from the caller's shell.
COMPOSE_VARIABLES = (
    "BROKER_URL",
    "RESULT_BACKEND",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "COURIER_IMAGE",
    "REDIS_IMAGE",
    "RABBITMQ_IMAGE",
    "FLOWER_IMAGE",
    "PROMETHEUS_IMAGE",
    "PROMETHEUS_BIND",
    "PROMETHEUS_PORT",
    "TASK_EVENTS",
    "API_BIND",
    "API_PORT",
    "FLOWER_BIND",
    "FLOWER_PORT",
    "API_TOKENS",
)


def compose_environment(overrides: dict[str, str]) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in COMPOSE_VARIABLES and not name.startswith("COMPOSE_")
    }
    env.update(overrides)
    return env


def run(
    argv: list[str], env: dict[str, str], timeout: float, cwd: Path = ROOT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def parse_json_stream(text: str) -> list[dict[str, Any]]:
    """`docker compose ps --format json`: a JSON array, or one object per line (newer compose)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        rows: list[dict[str, Any]] = json.loads(text)
        return rows
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class ComposeProject:
    """One compose project in its own directory, named `courier-e2e-<random>`."""

    def __init__(self, directory: Path, variables: dict[str, str], dotenv: dict[str, str]) -> None:
        self.name = f"courier-e2e-{uuid.uuid4().hex[:8]}"
        self.directory = directory
        shutil.copyfile(ROOT / "compose.yaml", directory / "compose.yaml")
        shutil.copytree(ROOT / "monitoring", directory / "monitoring")  # the monitoring profile
        (directory / ".env").write_text(
            "".join(f"{key}={value}\n" for key, value in dotenv.items()), encoding="utf-8"
        )
        self.env = compose_environment(variables)

    def argv(self, *args: str) -> list[str]:
        return [
            "docker",
            "compose",
            "--project-name",
            self.name,
            "--project-directory",
            str(self.directory),
            "--file",
            str(self.directory / "compose.yaml"),
            *args,
        ]

    def run(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(self.argv(*args), self.env, timeout, cwd=self.directory, check=check)

    def up(self, workers: int, *profiles: str) -> None:
        """`up --wait` with `workers` worker replicas and these profiles: every service healthy
        (or running, for those without a healthcheck) within four minutes."""
        enabled = [arg for profile in profiles for arg in ("--profile", profile)]
        self.run(
            *enabled,
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            "240",
            "--scale",
            f"worker={workers}",
            timeout=300,
        )

    def ps(self) -> list[dict[str, Any]]:
        return parse_json_stream(self.run("ps", "--all", "--format", "json").stdout)

    def exec(
        self, service: str, *command: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run("exec", "-T", service, *command, check=check)

    def logs(self, *services: str) -> str:
        return self.run("logs", "--no-color", "--no-log-prefix", *services, check=False).stdout

    def json_logs(self, *services: str) -> list[dict[str, Any]]:
        """The services' JSON log lines (compose may prefix lines with terminal escapes)."""
        return parse_json_lines(ANSI_ESCAPE.sub("", self.logs(*services)))

    def leftovers(self) -> list[str]:
        """Containers and networks of this project that still exist, any profile's included."""
        found = []
        for kind in ("container", "network"):
            listing = [
                *("docker", kind, "ls", "--quiet"),
                *("--all",) * (kind == "container"),
                *("--filter", f"label=com.docker.compose.project={self.name}"),
            ]
            found += [f"{kind} {name}" for name in run(listing, self.env, 60).stdout.split()]
        return found

    def down(self) -> subprocess.CompletedProcess[str]:
        """Remove everything, the services of every profile included (`down` alone leaves a
        profile's services running when the profile is not named)."""
        return self.run(
            *("--profile", "*"),
            *("down", "--volumes", "--remove-orphans", "--timeout", "10"),
            timeout=180,
            check=False,
        )
