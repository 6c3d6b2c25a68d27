"""The API through a Redis outage: /readyz turns 503 naming what is down, submitting answers 503,
/healthz stays 200, nothing is a 500; after Redis is back, /readyz is 200 again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from courier.testing.containers import LOOPBACK, redis_container
from tests.conftest import free_port
from tests.integration.processes import ApiClient, Courier
from tests.integration.services import LABELS, RedisServer, container_name

PROBLEM_JSON = "application/problem+json"
# A request against a dead Redis must still be answered this fast (BROKER_CONNECT_TIMEOUT=1).
MAX_ANSWER_SECONDS = 10.0


@pytest.fixture
def outage_redis(docker_client: Any) -> Iterator[tuple[RedisServer, Any]]:
    """A Redis of this test alone, on a fixed host port so that it keeps it across a restart."""
    container = redis_container(name=container_name("redis-outage"), labels=LABELS)
    container.ports["6379/tcp"] = (LOOPBACK, free_port())  # type: ignore[assignment]
    try:
        container.start()
        yield RedisServer(int(container.get_exposed_port(6379))), container
    finally:
        container.stop()


class Recorder:
    """Sends requests and keeps every answer, so the test can check that none was a 500."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.answers: list[tuple[str, int, float]] = []

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        started = time.monotonic()
        response = self.client.request(method, path, **kwargs)
        elapsed = time.monotonic() - started
        self.answers.append((f"{method} {path}", response.status_code, elapsed))
        return response


def wait_for_readiness(record: Recorder, status: int, timeout: float) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = record("GET", "/readyz")
        if response.status_code == status:
            return response
        if time.monotonic() >= deadline:
            raise AssertionError(f"/readyz not {status} within {timeout}s: {response.text}")
        time.sleep(0.3)


@pytest.mark.timeout(120)
def test_redis_outage_makes_the_api_unready_not_dead(
    courier: Courier, outage_redis: tuple[RedisServer, Any]
) -> None:
    redis, container = outage_redis
    api = courier.start("api", redis.url(0))
    api.wait_http()
    record = Recorder(api.api())
    ready = record("GET", "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"broker": "ok", "result_backend": "ok"}}
    job_id = api.api().submit_ok("demo.add", {"a": 1, "b": 2})

    stopped_at = time.monotonic()
    container.get_wrapped_container().stop(timeout=5)
    unready = wait_for_readiness(record, 503, timeout=20)
    noticed = time.monotonic() - stopped_at

    assert unready.headers["Content-Type"] == PROBLEM_JSON
    problem = unready.json()
    assert problem["status"] == 503
    assert problem["checks"] == {"broker": "unreachable", "result_backend": "unreachable"}
    assert "broker" in problem["detail"]
    assert "result backend" in problem["detail"]
    assert unready.headers["Retry-After"] == "5"

    submitted = record("POST", "/v1/jobs", json_body={"task": "demo.add", "args": {"a": 1, "b": 1}})
    assert submitted.status_code == 503, submitted.text
    assert submitted.headers["Content-Type"] == PROBLEM_JSON
    assert submitted.json()["status"] == 503
    looked_up = record("GET", f"/v1/jobs/{job_id}")
    assert looked_up.status_code == 503, looked_up.text
    assert looked_up.headers["Content-Type"] == PROBLEM_JSON
    alive = record("GET", "/healthz")
    assert alive.status_code == 200
    assert alive.json() == {"status": "ok"}

    restarted_at = time.monotonic()
    container.get_wrapped_container().start()
    back = wait_for_readiness(record, 200, timeout=30)
    recovered = time.monotonic() - restarted_at
    assert back.json()["checks"] == {"broker": "ok", "result_backend": "ok"}
    resubmitted = record(
        "POST", "/v1/jobs", json_body={"task": "demo.add", "args": {"a": 1, "b": 1}}
    )
    assert resubmitted.status_code == 202, resubmitted.text

    slowest = max(record.answers, key=lambda answer: answer[2])
    print(
        f"\noutage: /readyz 503 {noticed:.2f}s after stopping Redis; 200 {recovered:.2f}s after "
        f"restarting it; slowest answer {slowest[0]} {slowest[1]} in {slowest[2]:.2f}s; "
        f"{len(record.answers)} requests"
    )
    assert all(status != 500 for _, status, _ in record.answers), record.answers
    assert slowest[2] < MAX_ANSWER_SECONDS, record.answers
    assert not api.events("request", status=500)
    assert not api.events("unhandled error")
    assert api.running()
