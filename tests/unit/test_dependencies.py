"""Calls to the broker and the result backend on a request path: bounded by BROKER_TIMEOUT
against a server that accepts connections and never answers (as a paused Redis does), reported
without secrets, and logged once per change of state."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
import redis.exceptions
from falcon import testing
from kombu.exceptions import OperationalError

from courier.queue.dependencies import describe
from tests.unit.conftest import AUTH, ClientFactory

ADD = {"task": "demo.add", "args": {"a": 1, "b": 2}}
TIMEOUT = 0.5


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A Redis URL whose server takes connections (the kernel completes them) and never
    answers a command: what a paused Redis container looks like to a client."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        yield f"redis://:s3cret-pass@127.0.0.1:{listener.getsockname()[1]}/0"


@pytest.fixture
def silent_client(make_client: ClientFactory, silent_redis: str) -> testing.TestClient:
    return make_client(
        BROKER_URL=silent_redis, BROKER_TIMEOUT=str(TIMEOUT), BROKER_CONNECT_TIMEOUT="1"
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (redis.exceptions.TimeoutError("Timeout reading from 10.0.0.1:6379"), "timed out"),
        (redis.exceptions.ConnectionError("Error 111 connecting to redis:6379."), "unreachable"),
        (OperationalError("Error 111 connecting to redis:6379."), "unreachable"),
        (
            redis.exceptions.OutOfMemoryError("command not allowed", status_code="OOM"),
            "refuses writes (OOM)",
        ),
        (
            redis.exceptions.ResponseError("MISCONF Redis is configured to save RDB snapshots"),
            "refuses writes (MISCONF)",
        ),
        (
            redis.exceptions.ReadOnlyError(
                "You can't write against a replica", status_code="READONLY"
            ),
            "refuses writes (READONLY)",
        ),
        (
            redis.exceptions.AuthenticationError("invalid password", status_code="WRONGPASS"),
            "refused (WRONGPASS)",
        ),
        (ValueError("redis://:s3cret@host"), "failed (ValueError)"),
    ],
)
def test_failures_are_described_without_their_message(error: Exception, reason: str) -> None:
    assert describe(error) == reason


def test_a_wrapped_error_is_described_by_its_cause() -> None:
    inner = redis.exceptions.TimeoutError("Timeout reading")
    outer = OperationalError("wrapped")
    outer.__cause__ = inner
    assert describe(outer) == "timed out"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/jobs", ADD),
        ("GET", "/readyz", None),
        ("GET", "/v1/jobs/" + "0" * 8 + "-0000-4000-8000-" + "0" * 12, None),
    ],
)
def test_a_silent_redis_costs_a_request_one_timeout(
    silent_client: testing.TestClient, method: str, path: str, body: object
) -> None:
    started = time.monotonic()
    result = silent_client.simulate_request(method, path, json=body, headers=AUTH)
    took = time.monotonic() - started

    print(f"\n{method} {path} against a silent Redis: {result.status_code} after {took:.2f}s")
    assert result.status_code == 503, result.text
    assert result.headers["content-type"] == "application/problem+json"
    assert "timed out" in result.json["detail"]
    assert "s3cret" not in result.text
    # One timeout, not two (readiness asks both dependencies at once) and no retry after a
    # timeout: two timeouts in a row would take 2 * TIMEOUT.
    assert took < 1.8 * TIMEOUT


def test_readiness_logs_each_change_of_state_once(
    silent_client: testing.TestClient, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    from courier.logs import configure_logging
    from courier.settings import load_settings

    configure_logging(load_settings({"LOG_FORMAT": "json", "LOG_FLUSH_INTERVAL": "0"}))
    for _ in range(3):
        assert silent_client.simulate_get("/readyz").status_code == 503
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    changes = [line for line in lines if line["event"] == "not answering"]
    assert sorted((line["component"], line["reason"]) for line in changes) == [
        ("broker", "timed out"),
        ("result_backend", "timed out"),
    ]
    assert all("s3cret" not in json.dumps(line) for line in lines)
