"""The courier system from the built image, on a private Docker network, for end-to-end and
fault tests.

Every courier container runs hardened as in production (read-only root, a tmpfs on /tmp, no
capabilities, no-new-privileges, uid 65532). Containers are started with testcontainers, reached
from the host only through ports published on 127.0.0.1, and removed by `Stack.close()`.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import docker
import requests
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from tests.conftest import rabbitmq_image, redis_image
from tests.containers import publish_on_loopback, wait_for_log
from tests.logs import parse_json_lines

# Equivalent of `--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges
# --user 65532:65532` (the tmpfs is added with testcontainers' own `with_tmpfs_mount`).
HARDENING: dict[str, Any] = {
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "user": "65532:65532",
}
API_PORT = 5001
TERMINAL_STATES = ("SUCCESS", "FAILURE", "REVOKED")


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


def json_lines(container: DockerContainer | Any) -> list[dict[str, Any]]:
    """The JSON log lines of a container (running or exited), in order."""
    wrapped = (
        container.get_wrapped_container() if isinstance(container, DockerContainer) else container
    )
    return parse_json_lines(wrapped.logs(stdout=True, stderr=True).decode(errors="replace"))


def raw_logs(container: DockerContainer) -> str:
    logs: bytes = container.get_wrapped_container().logs(stdout=True, stderr=True)
    return logs.decode(errors="replace")


class ApiClient:
    """A bounded HTTP client for one published API container."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, timeout: float = 10.0) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=timeout)

    def submit(
        self, task: str, args: dict[str, Any], request_id: str | None = None, timeout: float = 10.0
    ) -> str:
        headers = {"X-Request-ID": request_id} if request_id else {}
        response = self.session.post(
            self.base_url + "/v1/jobs",
            json={"task": task, "args": args},
            headers=headers,
            timeout=timeout,
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_for_job(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            body = self.job(job_id)
            if body["state"] in TERMINAL_STATES:
                return body
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} not finished within {timeout}s: {body}")

    def wait_healthy(self, timeout: float = 60.0) -> float:
        return wait_until(
            lambda: self.get("/healthz", timeout=2).status_code == 200, timeout, what="API healthz"
        )

    def wait_ready(self, timeout: float = 60.0) -> float:
        return wait_until(
            lambda: self.get("/readyz", timeout=5).status_code == 200, timeout, what="API readyz"
        )


class Stack:
    """Containers of one test on one private network; `close()` removes them all."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.token = secrets.token_urlsafe(32)
        self.network = Network()
        self.network.create()
        self.containers: list[DockerContainer] = []
        self.suffix = uuid.uuid4().hex[:8]

    # -- infrastructure ------------------------------------------------------------------------

    def redis(self, *args: str, alias: str = "redis") -> DockerContainer:
        """A Redis server at `redis://<alias>:6379` on the network; extra redis-server args."""
        container = DockerContainer(redis_image()).with_command(["redis-server", *args])
        container.with_network(self.network).with_network_aliases(alias)
        container.with_name(f"{alias}-{self.suffix}")
        publish_on_loopback(container, 6379)
        self._start(container)
        wait_for_log(container, "Ready to accept connections")
        return container

    def rabbitmq(self, alias: str = "rabbitmq") -> DockerContainer:
        container = DockerContainer(rabbitmq_image())
        container.with_network(self.network).with_network_aliases(alias)
        container.with_name(f"{alias}-{self.suffix}")
        self._start(container)
        wait_for_log(container, "Server startup complete", timeout=120)
        return container

    # -- courier roles -------------------------------------------------------------------------

    def courier(
        self,
        mode: str | None,
        env: dict[str, str] | None = None,
        name: str | None = None,
        publish: bool = False,
        binds: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> DockerContainer:
        """A hardened courier container in `mode` (None: the image's default) on the network;
        `binds` mounts host folders (read-write) at container paths."""
        container = DockerContainer(self.image)
        environment = {"LOG_FORMAT": "json", "API_TOKENS": self.token, **(env or {})}
        if mode is not None:
            environment["MODE"] = mode
        for key, value in environment.items():
            container.with_env(key, value)
        container.with_network(self.network)
        container.with_name(name or f"courier-{mode or 'default'}-{uuid.uuid4().hex[:8]}")
        container.with_tmpfs_mount("/tmp", size="size=64m")
        for host_path, container_path in (binds or {}).items():
            container.with_volume_mapping(host_path, container_path, mode="rw")
        container.with_kwargs(**{**HARDENING, **kwargs})
        if publish:
            publish_on_loopback(container, API_PORT)
        self._start(container)
        return container

    def api_client(self, container: DockerContainer) -> ApiClient:
        port = int(container.get_exposed_port(API_PORT))
        return ApiClient(f"http://127.0.0.1:{port}", self.token)

    def _start(self, container: DockerContainer) -> None:
        self.containers.append(container)
        container.start()

    # -- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        for container in reversed(self.containers):
            try:
                container.get_wrapped_container().remove(force=True, v=True)
            except Exception:  # noqa: S112 - already gone
                continue
        self.network.remove()


@contextmanager
def stack(image: str) -> Iterator[Stack]:
    system = Stack(image)
    try:
        yield system
    finally:
        system.close()


def exit_code(container: DockerContainer, timeout: float = 60.0) -> int:
    result = container.get_wrapped_container().wait(timeout=timeout)
    return int(result["StatusCode"])


def health(container: DockerContainer) -> str:
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    return str(wrapped.attrs["State"].get("Health", {}).get("Status", "none"))
