"""`CourierStack` against the built image: a whole system on its own network that is the client
of its API, labelled, and removed on exit, after a failure in the test, and after each kind of
failure while starting (a role exiting, a broker exiting, a broker never ready), each failure
naming the container and why; a container the engine refuses is named too."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import docker
import pytest
import requests

from courier.testing import (
    LABEL,
    STACK_LABEL,
    CourierContainer,
    CourierStack,
    CourierStartError,
    CourierStopError,
    JobFailedError,
    default_redis_image,
    redis_container,
)
from courier.testing.containers import LOOPBACK
from tests.testing.conftest import leftovers, stack_name

NONROOT = "65532:65532"


@pytest.mark.timeout(300)
def test_a_stack_runs_jobs_reports_failures_and_leaves_nothing(
    docker_client: docker.DockerClient, courier_image: str
) -> None:
    name = stack_name("full")
    # A 1 s soft time limit: demo.sleep(5) fails with SoftTimeLimitExceeded.
    env = {"TASK_TIME_LIMIT": "2", "TASK_SOFT_TIME_LIMIT": "1"}
    started = time.monotonic()
    with CourierStack(courier_image, workers=2, beat=True, env=env, name=name) as stack:
        ready = time.monotonic() - started
        assert sorted(stack.roles) == ["api", "beat", "redis", "worker-1", "worker-2"]
        assert stack.run("demo.add", {"a": 2, "b": 3}) == 5
        job = stack.wait(stack.submit("demo.add", {"a": 1, "b": 1}, request_id="stack-test-1"))
        assert (job["state"], job["result"]) == ("SUCCESS", 2)

        with pytest.raises(JobFailedError) as failed:
            stack.run("demo.sleep", {"seconds": 5})
        assert failed.value.job["state"] == "FAILURE"
        assert failed.value.job["error"]["type"] == "SoftTimeLimitExceeded"
        assert "SoftTimeLimitExceeded" in str(failed.value)

        # Each role logs as itself; `worker` reads every worker.
        assert any(line.get("event") == "request" for line in stack.json_logs("api"))
        assert stack.logs("worker") == stack.logs("worker-1") + stack.logs("worker-2")
        assert "demo.sleep" in stack.logs("worker")
        with pytest.raises(KeyError, match="worker-1"):
            stack.logs("flower")

        # Everything carries the stack's label; couriers run hardened, ports on 127.0.0.1.
        selector = {"label": f"{STACK_LABEL}={name}"}
        found = {c.name: c for c in docker_client.containers.list(all=True, filters=selector)}
        assert set(found) == {f"{name}-{role}" for role in stack.roles}
        assert [n.name for n in docker_client.networks.list(filters=selector)] == [name]
        for container_name, container in found.items():
            assert container.labels[LABEL] == "true"
            bound = [b for bs in container.ports.values() if bs for b in bs]
            assert {b["HostIp"] for b in bound} <= {LOOPBACK}, (container_name, bound)
            if not container_name.endswith("-redis"):
                host = container.attrs["HostConfig"]
                assert host["ReadonlyRootfs"] is True, container_name
                assert host["CapDrop"] == ["ALL"], container_name
                assert container.attrs["Config"]["User"] == NONROOT, container_name

        # One more worker mid-test, on the same settings, removed with the rest.
        third = stack.add_courier("worker")
        assert stack.roles["worker-3"] is third
        assert stack.run("demo.add", {"a": 40, "b": 2}) == 42
        assert stack.redis_url().startswith(f"redis://{LOOPBACK}:")
    print(f"\nredis stack (api, 2 workers, beat) ready after {ready:.1f}s")
    assert leftovers(docker_client, name) == []


def test_a_failure_in_the_test_removes_the_stack(
    docker_client: docker.DockerClient, courier_image: str
) -> None:
    name = stack_name("body")

    def failing_test() -> None:
        with CourierStack(courier_image, api=False, workers=0, name=name) as stack:
            assert stack.redis is not None
            assert leftovers(docker_client, name) != []
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        failing_test()
    assert leftovers(docker_client, name) == []


# A broker image that runs but never logs RabbitMQ's start-up line: Redis, posing as RabbitMQ.
NEVER_READY_RABBITMQ = {"rabbitmq_image": default_redis_image(), "startup_timeout": 5}

START_FAILURES: dict[str, tuple[dict[str, Any], str, str, int | None]] = {
    # options, the container named, what the reason starts with, exit code
    "role exits": ({"env": {"WEB_CONCURRENCY": "0"}}, "api", "exited while starting", 78),
    "broker exits": ({"redis_args": ["--port", "not-a-port"]}, "redis", "exited", 1),
    "broker never ready": (
        {"broker": "rabbitmq", **NEVER_READY_RABBITMQ},
        "rabbitmq",
        "not ready within 5s: no 'Server startup complete' in its log yet",
        None,
    ),
}


@pytest.mark.parametrize(
    ("options", "role", "reason", "code"), START_FAILURES.values(), ids=START_FAILURES.keys()
)
def test_a_stack_that_cannot_start_says_which_container_and_why_and_leaves_nothing(
    docker_client: docker.DockerClient,
    courier_image: str,
    options: dict[str, Any],
    role: str,
    reason: str,
    code: int | None,
) -> None:
    name = stack_name("start")
    started = time.monotonic()
    with pytest.raises(CourierStartError) as raised:
        CourierStack(courier_image, name=name, **options).start()
    seconds = time.monotonic() - started
    error = raised.value
    print(f"\nfailed after {seconds:.1f}s: {str(error).splitlines()[0]}")
    assert error.container == f"{name}-{role}"
    assert error.reason.startswith(reason), error.reason
    assert error.exit_code == code
    assert leftovers(docker_client, name) == [], "the stack left containers or its network"


def test_a_container_the_engine_refuses_is_named_and_the_stack_still_cleans_up(
    docker_client: docker.DockerClient, courier_image: str, tmp_path: Path
) -> None:
    name = stack_name("refused")
    missing = docker.types.Mount(target="/data", source=str(tmp_path / "missing"), type="bind")
    with CourierStack(courier_image, api=False, workers=0, name=name) as stack:
        with pytest.raises(CourierStartError) as raised:
            stack.add_courier("worker", alias="refused", mounts=[missing])
        print(f"\n{raised.value.container}: {raised.value.reason}")
        assert raised.value.container == f"{name}-refused"
        assert raised.value.reason.startswith("could not be started: ")
        assert "bind source path does not exist" in raised.value.reason
    assert leftovers(docker_client, name) == []


class PerRoleStack(CourierStack):
    """A stack whose roles of a mode get settings of their own (`role_env[mode]`)."""

    def __init__(self, *args: Any, role_env: dict[str, dict[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.role_env = role_env

    def add_courier(
        self, mode: str | None, env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> CourierContainer:
        return super().add_courier(
            mode, {**(env or {}), **self.role_env.get(mode or "", {})}, **kwargs
        )


# A worker setting out of range: the worker exits 78 while starting.
BAD_WORKER = {"worker": {"WORKER_CONCURRENCY": "0"}}
NO_BROKER = {"BROKER_URL": "redis://nowhere.invalid:6379/0"}


@pytest.mark.parametrize(
    "role_env",
    [BAD_WORKER, {**BAD_WORKER, "api": NO_BROKER}],
    ids=["api-ready", "api-never-ready"],
)
def test_a_role_that_exits_fails_the_start_at_once_whatever_the_others_do(
    docker_client: docker.DockerClient, courier_image: str, role_env: dict[str, dict[str, str]]
) -> None:
    """The roles are waited for together: the worker's exit is reported at once, also while the
    API, listed first, is still (here: forever) not ready."""
    name = stack_name("together")
    timeout = 90.0
    started = time.monotonic()
    with pytest.raises(CourierStartError) as raised:
        PerRoleStack(
            courier_image, name=name, beat=True, startup_timeout=timeout, role_env=role_env
        ).start()
    seconds = time.monotonic() - started
    error = raised.value
    print(f"\nfailed after {seconds:.1f}s: {str(error).splitlines()[0]}")
    assert seconds < timeout / 3, "the exit was not seen before the other roles' wait"
    assert error.container == f"{name}-worker-1"
    assert error.reason == "exited while starting"
    assert error.exit_code == 78
    assert "WORKER_CONCURRENCY: must be from 1 to 256" in error.logs
    assert leftovers(docker_client, name) == []


def test_roles_never_ready_time_out_together_naming_each(
    docker_client: docker.DockerClient, courier_image: str
) -> None:
    """Without a broker that answers, neither the API nor the worker gets ready: one timeout
    for both, naming the first and listing the other."""
    name = stack_name("timeout")
    started = time.monotonic()
    with pytest.raises(CourierStartError) as raised:
        CourierStack(courier_image, name=name, env=NO_BROKER, startup_timeout=6).start()
    seconds = time.monotonic() - started
    error = raised.value
    print(f"\nfailed after {seconds:.1f}s: {error.reason}")
    assert seconds < 30, "the roles were waited for one after the other"
    assert error.container == f"{name}-api"
    assert error.exit_code is None
    assert error.reason.startswith("not ready within 6s: /readyz answered 503"), error.reason
    assert f"; also not ready: {name}-worker-1: " in error.reason
    assert leftovers(docker_client, name) == []


class BrokerDiesStack(CourierStack):
    """Kills Redis once the roles are started, before they are waited for."""

    def add_courier(self, mode: str | None, *args: Any, **kwargs: Any) -> CourierContainer:
        container = super().add_courier(mode, *args, **kwargs)
        if mode == "worker" and self.redis is not None:
            self.redis.get_wrapped_container().kill()
        return container


def test_a_broker_that_exits_while_the_roles_start_is_named(
    docker_client: docker.DockerClient, courier_image: str
) -> None:
    name = stack_name("broker-dies")
    started = time.monotonic()
    with pytest.raises(CourierStartError) as raised:
        BrokerDiesStack(courier_image, name=name, startup_timeout=90).start()
    seconds = time.monotonic() - started
    error = raised.value
    print(f"\nfailed after {seconds:.1f}s: {str(error).splitlines()[0]}")
    assert seconds < 30
    assert error.container == f"{name}-redis"
    assert error.reason == "exited while the others were starting"
    assert error.exit_code == 137
    assert leftovers(docker_client, name) == []


def test_stop_removes_everything_it_can_and_lists_what_it_could_not(
    docker_client: docker.DockerClient, courier_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container whose removal fails with an error that is no `APIError` (here the engine's
    connection dropping) keeps neither the containers after it nor the network (which then fails,
    the container still being on it); both are listed, and another `stop()` finishes."""
    name = stack_name("stop")
    stack = CourierStack(courier_image, api=False, workers=0, name=name).start()
    for alias in ("first", "second", "third"):
        stack.add_container(redis_container(), alias)
    stuck = stack.roles["second"].get_wrapped_container()
    dropped = requests.exceptions.ConnectionError("Connection aborted.")
    monkeypatch.setattr(stuck, "remove", mock.Mock(side_effect=dropped))

    try:
        with pytest.raises(CourierStopError) as raised:
            stack.stop()
        error = raised.value
        print(f"\n{error}")
        assert [what for what, _ in error.failures] == [
            f"container {name}-second",
            f"network {name}",
        ]
        assert error.failures[0][1] is dropped
        assert f"container {name}-second: ConnectionError: Connection aborted." in str(error)
        assert leftovers(docker_client, name) == [f"container {name}-second", f"network {name}"]
    finally:
        monkeypatch.undo()
        stack.stop()  # what failed is kept: this call removes it
    assert leftovers(docker_client, name) == []
