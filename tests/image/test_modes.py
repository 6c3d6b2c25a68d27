"""Every MODE starts from the image with production hardening; bad settings fail fast.

Hardening: `--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from testcontainers.core.network import Network

from courier.testing.containers import redis_container
from tests.image.conftest import (
    API_PORT,
    FAST_HEALTHCHECK,
    HARDENING,
    LOOPBACK,
    RunContainer,
    logs,
    published_port,
    wait_for_exit,
    wait_for_health,
    wait_for_http,
)

TOKEN = "image-test-token-0123456789abcdef"
BROKER_URL = "redis://redis:6379/0"


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    """A private Docker network for this module's containers."""
    with Network() as created:
        yield created


@pytest.fixture(scope="module")
def redis(network: Network) -> Iterator[None]:
    """Redis reachable as `redis:6379` on the private network."""
    container = redis_container(network=network, network_aliases=["redis"])
    try:
        container.start()
        yield
    finally:
        container.stop()


def hardened(network: Network | None = None, **env: str) -> dict[str, Any]:
    """Create arguments of a hardened courier container (API published on loopback)."""
    kwargs: dict[str, Any] = {
        **HARDENING,
        "environment": {"LOG_FORMAT": "json", **env},
        "healthcheck": FAST_HEALTHCHECK,
        "ports": {f"{API_PORT}/tcp": (LOOPBACK, None)},
        "labels": {"courier.tests": "image"},
    }
    if network is not None:
        kwargs["network"] = network.name
    return kwargs


def assert_hardened(container: Any, image_attrs: dict[str, Any]) -> None:
    host = container.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert "/tmp" in host["Tmpfs"]
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    # Only the timing is overridden: the check itself is the image's `courier healthcheck`.
    assert (
        container.attrs["Config"]["Healthcheck"]["Test"]
        == (image_attrs["Config"]["Healthcheck"]["Test"])
    )


def submit_add(base: str, token: str, timeout: float = 60.0) -> dict[str, Any]:
    """POST demo.add 2 + 40 and poll the job until it finishes; return the final job."""
    headers = {"Authorization": f"Bearer {token}"}
    response = requests.post(
        f"{base}/v1/jobs",
        json={"task": "demo.add", "args": {"a": 2, "b": 40}},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 202, response.text
    job_url = base + response.headers["Location"]
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = requests.get(job_url, headers=headers, timeout=10).json()
        if job.get("state") in ("SUCCESS", "FAILURE", "REVOKED"):
            return job
        time.sleep(0.3)
    pytest.fail(f"job not finished within {timeout}s: {job}")


@pytest.mark.usefixtures("redis")
def test_api_worker_and_beat_start_hardened_against_redis(
    run_container: RunContainer,
    image_id: str,
    image_attrs: dict[str, Any],
    network: Network,
) -> None:
    started = time.monotonic()
    roles = {
        mode: run_container(
            image_id,
            **hardened(network, MODE=mode, BROKER_URL=BROKER_URL, API_TOKENS=TOKEN),
        )
        for mode in ("api", "worker", "beat")
    }
    for container in roles.values():
        assert_hardened(container, image_attrs)
    base = f"http://{LOOPBACK}:{published_port(roles['api'])}"
    assert wait_for_http(roles["api"], f"{base}/healthz").json() == {"status": "ok"}
    ready = wait_for_http(roles["api"], f"{base}/readyz").json()
    assert ready == {"status": "ready", "checks": {"broker": "ok", "result_backend": "ok"}}
    seconds = {mode: wait_for_health(container) for mode, container in roles.items()}
    print(
        f"\nhardened api/worker/beat healthy after {time.monotonic() - started:.1f}s "
        f"({', '.join(f'{m} +{s:.1f}s' for m, s in seconds.items())})"
    )
    # The worker does real work from its read-only file system.
    job = submit_add(base, TOKEN)
    assert (job["state"], job["result"]) == ("SUCCESS", 42), job
    for mode, container in roles.items():
        container.reload()
        assert container.status == "running", f"{mode} stopped:\n{logs(container)}"


@pytest.mark.usefixtures("redis")
def test_mode_all_starts_hardened_against_redis(
    run_container: RunContainer,
    image_id: str,
    image_attrs: dict[str, Any],
    network: Network,
) -> None:
    started = time.monotonic()
    container = run_container(
        image_id,
        **hardened(network, MODE="all", BROKER_URL="redis://redis:6379/1", API_TOKENS=TOKEN),
    )
    assert_hardened(container, image_attrs)
    base = f"http://{LOOPBACK}:{published_port(container)}"
    assert wait_for_http(container, f"{base}/healthz").json() == {"status": "ok"}
    assert wait_for_http(container, f"{base}/readyz").json()["status"] == "ready"
    wait_for_health(container)
    print(f"\nhardened MODE=all healthy after {time.monotonic() - started:.1f}s")
    job = submit_add(base, TOKEN)
    assert (job["state"], job["result"]) == ("SUCCESS", 42), job


def test_embedded_default_serves_the_api_and_runs_a_job(
    run_container: RunContainer, image_id: str, image_attrs: dict[str, Any], head: str
) -> None:
    """`docker run -p 5001:5001 IMAGE`: no MODE, no broker, no token configured."""
    started = time.monotonic()
    kwargs = hardened()
    kwargs["environment"] = {}  # nothing at all: the image's defaults
    container = run_container(image_id, **kwargs)
    assert_hardened(container, image_attrs)
    base = f"http://{LOOPBACK}:{published_port(container)}"
    assert wait_for_http(container, f"{base}/healthz").json() == {"status": "ok"}
    assert wait_for_http(container, f"{base}/readyz").json()["status"] == "ready"
    version = requests.get(f"{base}/version", timeout=5).json()
    assert version["commit"] == head

    exit_code, output = container.exec_run(["courier", "token"], stdout=True, stderr=False)
    token = bytes(output).decode().strip()
    assert exit_code == 0, token
    assert len(token) >= 32, f"courier token printed no token: {token!r}"
    assert " " not in token
    unauthorized = requests.post(
        f"{base}/v1/jobs", json={"task": "demo.add", "args": {"a": 2, "b": 40}}, timeout=10
    )
    assert unauthorized.status_code == 401

    job = submit_add(base, token)
    assert (job["state"], job["result"]) == ("SUCCESS", 42), job
    wait_for_health(container)
    print(f"\nembedded default: job done and healthy after {time.monotonic() - started:.1f}s")
    log = logs(container)
    assert "demo.add" in log  # the log is the container's real output
    assert token not in log, "the generated token appears in the container log"


def test_unknown_mode_exits_64_naming_the_valid_modes(
    run_container: RunContainer, image_id: str
) -> None:
    container = run_container(image_id, **hardened(MODE="bogus"))
    assert wait_for_exit(container) == 64
    lines = logs(container).strip().splitlines()
    print(f"\nMODE=bogus: {lines}")
    assert len(lines) == 1, lines
    assert all(mode in lines[0] for mode in ("api", "worker", "beat", "all")), lines[0]
    assert "MODE" in lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "not-a-port"),
        ("PORT", "70000"),
        ("HEARTBEAT_INTERVAL", "1e300"),  # the demo's own setting: declared the same way
        ("MAX_BODY_BYTES", "99999999999999"),
        ("BEAT_LOCK_TIMEOUT", "100000000000000000000"),
        ("BROKER_TIMEOUT", "nan"),
    ],
)
def test_a_number_out_of_its_range_exits_78_naming_the_variable(
    run_container: RunContainer, image_id: str, variable: str, value: str
) -> None:
    container = run_container(image_id, **hardened(None, **{variable: value}))
    assert wait_for_exit(container) == 78
    # The error is one line on stderr (stdout may hold the JSON lines logged before the
    # business code's own settings were read).
    lines = container.logs(stdout=False, stderr=True).decode().strip().splitlines()
    print(f"\n{variable}={value}: {lines}")
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"courier: configuration error: {variable}: "), lines[0]
    assert value not in lines[0], "the message repeats the invalid value"
