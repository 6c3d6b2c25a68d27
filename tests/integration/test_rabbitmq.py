"""RabbitMQ as the broker, Redis as the result backend (and beat lock): a job's round trip, beat's
heartbeat through RabbitMQ, and neither server's password in any process's output.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from courier.testing.containers import LOOPBACK, host_port, rabbitmq_container
from tests.integration.processes import Courier
from tests.integration.services import LABELS, REDIS_PASSWORD, RedisServer, container_name
from tests.integration.test_redis_stack import scrape

RABBITMQ_USER = "courier"
RABBITMQ_PASSWORD = "S3cretPassw0rd"


@pytest.fixture(scope="module")
def rabbitmq_url(docker_client: Any) -> Iterator[str]:
    """A RabbitMQ with a user `courier` whose password is easy to search for in logs."""
    container = rabbitmq_container(name=container_name("rabbitmq"), labels=LABELS)
    try:
        container.start()
        for command in (
            ["rabbitmqctl", "add_user", RABBITMQ_USER, RABBITMQ_PASSWORD],
            ["rabbitmqctl", "set_permissions", "-p", "/", RABBITMQ_USER, ".*", ".*", ".*"],
        ):
            code, output = container.exec(command)
            assert code == 0, output.decode(errors="replace")
        port = host_port(container, 5672)
        yield f"amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@{LOOPBACK}:{port}//"
    finally:
        container.stop()


@pytest.mark.timeout(150)
def test_round_trip_through_rabbitmq_without_leaking_passwords(
    courier: Courier, rabbitmq_url: str, redis_server: RedisServer
) -> None:
    backend = redis_server.fresh_url()
    assert REDIS_PASSWORD in backend
    env = {"RESULT_BACKEND": backend, "HEARTBEAT_INTERVAL": "1", "BEAT_LOCK_TIMEOUT": "3"}
    worker = courier.start("worker", rabbitmq_url, **env)
    beat = courier.start("beat", rabbitmq_url, **env)
    api = courier.start("api", rabbitmq_url, **env)
    api.wait_http()
    worker.wait_worker_ready()
    client = api.api()
    assert client.get("/readyz").json()["checks"] == {"broker": "ok", "result_backend": "ok"}
    request_id = f"itest-amqp-{uuid.uuid4().hex[:8]}"

    started = time.monotonic()
    job_id = client.submit_ok("demo.add", {"a": 2, "b": 3}, request_id=request_id)
    body = client.wait_for_job(job_id)

    print(f"\ndemo.add round trip through RabbitMQ: {time.monotonic() - started:.2f}s")
    assert body["result"] == 5
    assert worker.wait_for_event("added", timeout=5, task_id=job_id)[0]["request_id"] == request_id
    beat.wait_for_event("holding the beat lock; sending periodic jobs", timeout=15)
    worker.wait_for_event("heartbeat", timeout=15)

    # The queue depth, read from RabbitMQ by the API's exporter: jobs wait while no worker runs.
    beat.stop()
    worker.stop()
    waiting = [client.submit_ok("demo.add", {"a": 1, "b": 1}) for _ in range(3)]
    samples = scrape(api)
    depth = samples['courier_queue_depth{queue="celery"}']
    print(f"with no worker, {len(waiting)} jobs queued: the exporter reads a depth of {depth}")
    assert depth == len(waiting)
    # AMQP shows no message without taking it: no age, rather than a wrong one.
    assert not any(name.startswith("courier_queue_oldest_age_seconds{") for name in samples)

    # Stop first: shutdown and error paths print too.
    courier.stop_all()
    for process in (worker, beat, api):
        output = process.log_text()
        assert output.strip(), f"{process.name} printed nothing"
        assert RABBITMQ_PASSWORD not in output, f"{process.name} printed the RabbitMQ password"
        assert REDIS_PASSWORD not in output, f"{process.name} printed the Redis password"
