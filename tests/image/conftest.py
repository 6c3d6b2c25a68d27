"""Helpers for the image tests: the build environment, hardened containers, bounded waits.

Every container a test starts goes through the `run_container` factory, which removes it (and
its anonymous volumes) when the test ends, pass or fail. Ports are published on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests

from tests.conftest import ROOT, git_commit

LOOPBACK = "127.0.0.1"
API_PORT = 5001
SECOND_NS = 1_000_000_000

# The hardening every production run should use: read-only root file system with a tmpfs for
# DATA_DIR (/tmp/courier), no capabilities, no privilege escalation.
HARDENING: dict[str, Any] = {
    "read_only": True,
    "tmpfs": {"/tmp": ""},
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
}

# The image's own HEALTHCHECK command (no `test` key: Docker inherits it from the image), checked
# every second instead of every 10 s so that the tests do not wait for the production interval.
FAST_HEALTHCHECK: dict[str, int] = {
    "interval": SECOND_NS,
    "timeout": 5 * SECOND_NS,
    "retries": 3,
    "start_period": 60 * SECOND_NS,
}

# Variables of the build that the tests pass through from the environment (CI sets them).
BUILD_VARIABLES = ("BUILD_IMAGE", "RUNTIME_IMAGE", "CA_BUNDLE", "SBOM_GENERATOR")
# Variables of docker-bake.hcl that a test build must not inherit by accident.
BAKE_VARIABLES = (
    "BUILD_IMAGE",
    "RUNTIME_IMAGE",
    "VERSION",
    "GIT_SHA",
    "SOURCE_DATE_EPOCH",
    "IMAGE",
    "REGISTRY",
    "CA_BUNDLE",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "SOURCE",
    "PLATFORMS",
    "SBOM_GENERATOR",
)


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def head_commit() -> str:
    commit = git_commit()
    assert len(commit) == 40, f"`git rev-parse HEAD` gave {commit!r}; the tests need a checkout"
    return commit


def ca_bundle() -> Path | None:
    """The PEM bundle for a TLS-intercepting proxy, from CA_BUNDLE (unset: none)."""
    value = os.environ.get("CA_BUNDLE", "").strip()
    if not value:
        return None
    path = Path(value).resolve()
    assert path.is_file(), f"CA_BUNDLE names no file: {value}"
    return path


def secret_args() -> list[str]:
    """`docker buildx build` arguments that pass CA_BUNDLE as the BuildKit secret `ca_bundle`."""
    bundle = ca_bundle()
    return [] if bundle is None else ["--secret", f"id=ca_bundle,src={bundle}"]


def bake_env(**values: str) -> dict[str, str]:
    """The environment for `docker buildx bake`: this one without any bake variable, then the
    build variables that CI sets (base images, CA bundle, SBOM generator), then `values`."""
    env = bare_bake_env()
    for name in BUILD_VARIABLES:
        if os.environ.get(name):
            env[name] = os.environ[name]
    bundle = ca_bundle()
    if bundle is not None:
        env["CA_BUNDLE"] = str(bundle)
    env.update(values)
    return env


def bare_bake_env() -> dict[str, str]:
    """This environment without any bake variable: what bake sees when nothing is passed in."""
    return {k: v for k, v in os.environ.items() if k not in BAKE_VARIABLES}


def bake_print(env: dict[str, str], cwd: Path = ROOT, command: list[str] | None = None) -> Any:
    """The build definition that `docker buildx bake --print` resolves (no build)."""
    argv = command or ["docker", "buildx", "bake", "-f", "docker-bake.hcl"]
    result = subprocess.run(
        [*argv, "--print"], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{argv} --print failed:\n{result.stderr}"
    return json.loads(result.stdout)


def mb(size: int) -> float:
    return size / 1_000_000


@pytest.fixture(scope="session")
def head(courier_image: str) -> str:
    """HEAD as of the session's build (read once, right after it): what the image must name
    even if a commit lands while the tests run."""
    return head_commit()


@pytest.fixture(scope="session")
def image_id(docker_client: docker.DockerClient, courier_image: str, head: str) -> str:
    """The id of the session's image. Tests use it rather than the tag, so that another build
    that moves the tag meanwhile cannot swap the image under them."""
    return str(docker_client.images.get(courier_image).id)


@pytest.fixture(scope="session")
def image_attrs(docker_client: docker.DockerClient, image_id: str) -> dict[str, Any]:
    """`docker image inspect` of the session's image."""
    attrs: dict[str, Any] = docker_client.images.get(image_id).attrs
    return attrs


RunContainer = Callable[..., Any]


@pytest.fixture
def run_container(docker_client: docker.DockerClient) -> Iterator[RunContainer]:
    """`run_container(image, **create_kwargs)`: create and start a detached container that is
    removed after the test. Creation and start are separate so that a container whose start
    fails is removed too; the start error is raised."""
    created: list[Any] = []

    def run(image: str, **kwargs: Any) -> Any:
        container = docker_client.containers.create(image, **kwargs)
        created.append(container)
        container.start()
        container.reload()
        return container

    yield run
    for container in reversed(created):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


def logs(container: Any) -> str:
    return bytes(container.logs(stdout=True, stderr=True)).decode(errors="replace")


def published_port(container: Any, port: int = API_PORT) -> int:
    """The 127.0.0.1 host port that `port` is published on."""
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp") or []
    loopback = [b for b in bindings if b["HostIp"] == LOOPBACK]
    assert loopback, f"port {port} is not published on {LOOPBACK}: {bindings}"
    assert all(b["HostIp"] == LOOPBACK for b in bindings), f"published beyond loopback: {bindings}"
    return int(loopback[0]["HostPort"])


def wait_for_http(container: Any, url: str, timeout: float = 60.0) -> requests.Response:
    """GET `url` until it answers 200; fail with the container's log if it never does."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=3)
            if response.status_code == 200:
                return response
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except requests.RequestException as error:
            last = type(error).__name__
        container.reload()
        if container.status in ("exited", "dead"):
            break
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer 200 within {timeout}s ({last}); log:\n{logs(container)}")


def wait_for_health(container: Any, timeout: float = 90.0) -> float:
    """Wait until Docker reports the container healthy; return the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        container.reload()
        state = container.attrs["State"]
        health = state.get("Health") or {}
        if health.get("Status") == "healthy":
            return time.monotonic() - started
        if health.get("Status") == "unhealthy" or state.get("Status") in ("exited", "dead"):
            break
        time.sleep(0.5)
    pytest.fail(
        f"{container.name} not healthy within {timeout}s: {json.dumps(state)[-1500:]}\n"
        f"log:\n{logs(container)[-4000:]}"
    )


def wait_for_exit(container: Any, timeout: float = 60.0) -> int:
    result = container.wait(timeout=timeout)
    return int(result["StatusCode"])
