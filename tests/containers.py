"""Containers for tests: started with testcontainers, published on 127.0.0.1 only, removed after."""

from __future__ import annotations

import time
from typing import Any

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from tests.conftest import rabbitmq_image, redis_image

LOOPBACK = "127.0.0.1"


def publish_on_loopback(container: DockerContainer, *ports: int) -> DockerContainer:
    """Publish container ports on 127.0.0.1 (random host ports), never on every interface."""
    for port in ports:
        container.ports[f"{port}/tcp"] = (LOOPBACK, None)  # type: ignore[assignment]
    return container


def host_port(container: DockerContainer, port: int) -> int:
    return int(container.get_exposed_port(port))


def wait_for_log(container: DockerContainer, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stdout, stderr = container.get_logs()
        if text.encode() in stdout or text.encode() in stderr:
            return
        if container.status in ("exited", "dead"):
            break
        time.sleep(0.3)
    stdout, stderr = container.get_logs()
    tail = (stdout + stderr).decode(errors="replace")[-2000:]
    raise TimeoutError(f"{text!r} not seen in the container's log within {timeout}s:\n{tail}")


def redis_container(
    *command: str, network: Network | None = None, alias: str = "redis", **kwargs: Any
) -> DockerContainer:
    """A Redis server (not started). Extra `command` words are appended to `redis-server`."""
    container = DockerContainer(redis_image(), **kwargs).with_command(
        ["redis-server", "--protected-mode", "no", *command]
    )
    if network is not None:
        container.with_network(network).with_network_aliases(alias)
    return publish_on_loopback(container, 6379)


def rabbitmq_container(network: Network | None = None, alias: str = "rabbitmq") -> DockerContainer:
    container = DockerContainer(rabbitmq_image())
    if network is not None:
        container.with_network(network).with_network_aliases(alias)
    return publish_on_loopback(container, 5672)


def start_redis(container: DockerContainer) -> DockerContainer:
    container.start()
    wait_for_log(container, "Ready to accept connections")
    return container


def start_rabbitmq(container: DockerContainer) -> DockerContainer:
    container.start()
    wait_for_log(container, "Server startup complete", timeout=120)
    return container
