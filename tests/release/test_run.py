"""The released image runs: pulled by tag, it serves the API and runs a job in MODE=all, and says
what its labels say; its arm64 variant does the same under QEMU (qemu-user-static)."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import docker
import pytest
import requests
from testcontainers.core.container import DockerContainer

from courier.testing.containers import host_port, publish_on_loopback
from tests.image.test_modes import submit_add
from tests.release.conftest import OCI, TOKEN, Published, image_config

API_PORT = 5001


def version_line(labels: dict[str, str]) -> str:
    return (
        f"courier {labels[OCI + 'version']} (commit {labels[OCI + 'revision']}, "
        f"built {labels[OCI + 'created']})"
    )


def pull(ref: str, platform: str, pulled: list[str]) -> None:
    pulled.append(ref)
    result = subprocess.run(
        ["docker", "pull", "--quiet", "--platform", platform, ref],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"docker pull {ref} ({platform}) failed: {result.stderr}"


def run_a_job(ref: str, platform: str, startup: float) -> float:
    """Start `ref` (MODE=all, the embedded default) for `platform` with testcontainers, wait for
    /readyz, run demo.add through the API; return the seconds until ready."""
    container = publish_on_loopback(
        DockerContainer(ref, platform=platform).with_env("API_TOKENS", TOKEN), API_PORT
    )
    started = time.monotonic()
    with container:
        base = f"http://127.0.0.1:{host_port(container, API_PORT)}"
        deadline = started + startup
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or container.get_wrapped_container().status == "exited":
                stdout, stderr = container.get_logs()
                pytest.fail(
                    f"{ref} ({platform}) not ready in {startup}s:\n{(stdout + stderr)[-3000:]!r}"
                )
            time.sleep(1)
        ready = time.monotonic() - started
        job = submit_add(base, TOKEN, timeout=startup)
        assert (job["state"], job["result"]) == ("SUCCESS", 42), job
    return ready


def run_version(docker_client: docker.DockerClient, ref: str, platform: str) -> str:
    output = docker_client.containers.run(ref, ["version"], platform=platform, remove=True)
    return bytes(output).decode().strip()


@pytest.mark.parametrize(
    ("platform", "startup"), [("linux/amd64", 90.0), ("linux/arm64", 300.0)], ids=["amd64", "arm64"]
)
def test_pulled_release_runs_a_job_and_reports_its_labels(
    published: Published,
    docker_client: docker.DockerClient,
    pulled: list[str],
    platform: str,
    startup: float,
) -> None:
    ref = published.release.ref()
    labels: dict[str, Any] = image_config(ref, platform)["config"]["Labels"]
    pull(ref, platform, pulled)
    version = run_version(docker_client, ref, platform)
    print(f"\n{platform}: `docker run {ref} version`: {version}")
    assert version == version_line(labels)
    ready = run_a_job(ref, platform, startup)
    print(f"{platform}: MODE=all ready in {ready:.1f}s, demo.add done")
