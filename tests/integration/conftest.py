"""Integration fixtures: one password-protected Redis for the session (a fresh database number for
each user, so workers of different tests never consume each other's messages), and a `courier`
factory that starts real courier processes and stops them after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from courier.testing.containers import host_port, redis_container
from tests.integration.processes import Courier
from tests.integration.services import (
    LABELS,
    REDIS_DATABASES,
    REDIS_PASSWORD,
    RedisServer,
    container_name,
)


@pytest.fixture(scope="session")
def redis_server(docker_client: Any) -> Iterator[RedisServer]:
    container = redis_container(
        "--requirepass",
        REDIS_PASSWORD,
        "--databases",
        str(REDIS_DATABASES),
        name=container_name("redis"),
        labels=LABELS,
    )
    try:
        container.start()
        yield RedisServer(host_port(container, 6379), REDIS_PASSWORD, container)
    finally:
        container.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A fresh, empty Redis database (broker, result backend and beat lock of one test)."""
    return redis_server.fresh_url()


@pytest.fixture
def courier(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Courier]:
    """Start courier processes with `courier.start(mode, broker_url, **env)`; all stopped after."""
    processes = Courier(tmp_path / "courier")
    yield processes
    processes.finish(request)
