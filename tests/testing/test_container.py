"""`CourierContainer` against the built image: hardened like production, ready when its role
is, versions from the running container and from the image's labels, and a container that
exits while starting fails at once with its exit code and last log lines, then is removed."""

from __future__ import annotations

import time
import urllib.request
from datetime import timedelta

import docker
import pytest
from testcontainers.core.waiting_utils import WaitStrategyTarget

from courier.testing import CourierContainer, CourierReady, CourierStartError
from courier.testing.containers import LOOPBACK
from tests.testing.conftest import labelled

NONROOT = "65532:65532"
# Far longer than any of these containers needs: a test that waited for it would have failed.
PATIENT = 300.0


def test_embedded_container_is_hardened_ready_and_runs_a_job(
    docker_client: docker.DockerClient, courier_image: str
) -> None:
    started = time.monotonic()
    with CourierContainer(courier_image) as courier:
        ready = time.monotonic() - started
        wrapped = courier.get_wrapped_container()
        wrapped.reload()
        host = wrapped.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert "/tmp" in host["Tmpfs"]
        assert wrapped.attrs["Config"]["User"] == NONROOT
        bindings = wrapped.attrs["NetworkSettings"]["Ports"]["5001/tcp"]
        assert {binding["HostIp"] for binding in bindings} == {LOOPBACK}, bindings
        assert courier.api_url().startswith(f"http://{LOOPBACK}:")

        # Ready means ready: /readyz answers 200 and the role's own healthcheck passes.
        with urllib.request.urlopen(courier.api_url() + "/readyz", timeout=5) as response:
            assert response.status == 200
        assert courier.healthcheck() == 0
        assert courier.client().run("demo.add", {"a": 2, "b": 3}) == 5

        running, labelled_version = courier.version(), courier.labeled_version()
        assert running == labelled_version, (running, labelled_version)
        assert courier.client().get("/version") == running.as_dict()
        assert len(running.commit) == 40, running
        name = wrapped.name
        print(f"\nMODE=all ready after {ready:.1f}s; {running}")
    assert labelled(docker_client, name) == []


@pytest.mark.parametrize(
    ("mode", "env", "code", "named"),
    [
        ("bogus", {}, 64, "MODE"),
        ("api", {"WEB_CONCURRENCY": "0"}, 78, "WEB_CONCURRENCY"),
        ("worker", {"BROKER_URL": "redis://redis:6379/0", "PORT": "70000"}, 78, "PORT"),
    ],
    ids=["bad-mode", "bad-setting-api", "bad-setting-worker"],
)
def test_a_container_that_exits_fails_at_once_with_its_code_and_log(
    docker_client: docker.DockerClient,
    courier_image: str,
    mode: str,
    env: dict[str, str],
    code: int,
    named: str,
) -> None:
    started = time.monotonic()
    with (
        pytest.raises(CourierStartError) as raised,
        CourierContainer(courier_image, mode, startup_timeout=PATIENT, env=env),
    ):
        pass
    failed_after = time.monotonic() - started
    error = raised.value
    print(f"\n{mode} {env}: failed after {failed_after:.1f}s: {error}")
    assert error.exit_code == code
    assert error.reason == "exited while starting"  # the exit was seen, not a timeout
    assert f"with exit code {code}" in str(error)
    assert named in error.logs
    assert error.logs in str(error)
    assert labelled(docker_client, error.container) == [], "the failed container was left"


def test_a_role_that_never_gets_ready_says_why(
    docker_client: docker.DockerClient, courier_image: str
) -> None:
    """An API whose broker does not exist runs, but /readyz stays 503: the wait ends after its
    timeout with what /readyz said."""
    container = CourierContainer(
        courier_image, "api", BROKER_URL="redis://nowhere.invalid:6379/0", startup_timeout=8
    )
    with pytest.raises(CourierStartError) as raised:
        container.start()
    error = raised.value
    print(f"\nno broker: {error.reason}")
    assert error.exit_code is None
    assert error.reason.startswith("not ready within 8s: /readyz answered 503")
    assert "broker" in error.reason
    assert labelled(docker_client, error.container) == []


def test_without_waiting_a_failing_container_can_be_inspected(courier_image: str) -> None:
    with CourierContainer(courier_image, "bogus", wait=False) as container:
        assert container.exit_code(timeout=60) == 64
        assert "unknown MODE 'bogus'" in container.logs()


class ExitsDuringTheCheck(CourierReady):
    """Kills the container after the wait saw it running and before its readiness check runs:
    the check then meets an exited container (no port map, no exec)."""

    def problem(self, container: WaitStrategyTarget) -> str | None:
        wrapped = container.get_wrapped_container()
        wrapped.kill()
        wrapped.wait(timeout=60)
        return super().problem(container)


@pytest.mark.parametrize(
    ("api", "healthcheck"), [(True, False), (False, True)], ids=["port", "healthcheck"]
)
def test_an_exit_between_the_status_and_the_check_is_reported_as_an_exit(
    courier_image: str, api: bool, healthcheck: bool
) -> None:
    # Runs, never ready (no broker): without the kill, the wait would take its whole timeout.
    with CourierContainer(
        courier_image, "api", BROKER_URL="redis://nowhere.invalid:6379/0", wait=False
    ) as container:
        deadline = time.monotonic() + 60
        while not container.logs().strip() and time.monotonic() < deadline:
            time.sleep(0.2)  # a log to show once it is killed
        wait = ExitsDuringTheCheck(container.port if api else None, healthcheck, consuming=False)
        started = time.monotonic()
        with pytest.raises(CourierStartError) as raised:
            wait.with_startup_timeout(timedelta(seconds=PATIENT)).wait_until_ready(container)
        assert time.monotonic() - started < 60
    error = raised.value
    print(f"\nkilled during the check: {str(error).splitlines()[0]}")
    assert error.container == container.get_wrapped_container().name
    assert error.reason == "exited while starting"
    assert error.exit_code == 137
    assert "with exit code 137 (killed)" in str(error)
    assert error.logs
    assert error.logs in str(error)
