"""`CourierStack` against the built image: a whole system on its own network that is the client
of its API, labelled, and removed on exit, after a failure in the test, and after each kind of
failure while starting (a role exiting, a broker exiting, a broker never ready), each failure
naming the container and why; a container the engine refuses is named too."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
import pytest

from courier.testing import (
    LABEL,
    STACK_LABEL,
    CourierStack,
    CourierStartError,
    JobFailedError,
    default_redis_image,
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
