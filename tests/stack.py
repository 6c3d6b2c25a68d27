"""The suite's own helpers on top of `courier.testing`: a stack that starts empty (each fault
test adds the containers it measures, and waits for what it needs itself), a client that also
gives raw HTTP responses (for tests of statuses and headers), bounded polling, and a few
readers of Docker's view of a container.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import docker
import requests
from testcontainers.core.container import DockerContainer

from courier.testing import CourierClient, CourierContainer, CourierStack
from courier.testing.containers import container_logs, rabbitmq_container, redis_container


class ApiClient(CourierClient):
    """`courier.testing`'s client, plus a `requests` session for raw responses."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(base_url, token)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def http_get(self, path: str, timeout: float = 10.0) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=timeout)

    def wait_healthy(self, timeout: float = 60.0) -> float:
        return wait_until(
            lambda: self.http_get("/healthz", timeout=2).status_code == 200,
            timeout,
            what="API healthz",
        )

    def wait_ready(self, timeout: float = 60.0) -> float:
        return wait_until(
            lambda: self.http_get("/readyz", timeout=5).status_code == 200,
            timeout,
            what="API readyz",
        )


class Stack(CourierStack):
    """A stack with no broker and no role yet: a private network that the test fills."""

    def __init__(self, image: str) -> None:
        self.suffix = uuid.uuid4().hex[:8]
        super().__init__(
            image, broker=None, api=False, workers=0, name=f"courier-test-{self.suffix}"
        )

    def add_redis(self, *args: str, alias: str = "redis") -> DockerContainer:
        """A Redis at `redis://<alias>:6379` on the network; `args` go to redis-server."""
        return self.add_container(redis_container(*args), alias)

    def add_rabbitmq(self, alias: str = "rabbitmq") -> DockerContainer:
        return self.add_container(rabbitmq_container(), alias)

    def courier(
        self, mode: str | None, env: dict[str, str] | None = None, **kwargs: Any
    ) -> CourierContainer:
        """A hardened courier role, started without waiting (the tests wait for what they
        measure); `kwargs` as for `add_courier`. (Its log lines are written one by one, as
        `courier.testing` does: fault tests count the lines of the processes they kill.)"""
        return self.add_courier(mode, env, wait=False, **kwargs)

    def api_client(self, container: CourierContainer) -> ApiClient:
        return ApiClient(container.api_url(), self.token)


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.25, what: str = "condition"
) -> float:
    """Poll `predicate` until true; return the seconds it took, or raise after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except (requests.RequestException, docker.errors.APIError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s")


def health(container: DockerContainer) -> str:
    """Docker's health status of the container (`healthy`, `starting`, ...)."""
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    return str(wrapped.attrs["State"].get("Health", {}).get("Status", "none"))


def dump_logs(stack: CourierStack, tail: int = 60) -> None:
    """Print the last lines of every container of the stack (for a failed test)."""
    for role, container in stack.roles.items():
        lines = container_logs(container).splitlines()[-tail:]
        print(f"\n----- {role} ({container.get_wrapped_container().name}) -----")
        print("\n".join(lines))
