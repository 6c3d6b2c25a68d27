"""api + worker + beat against a real Redis (broker, result backend and beat lock in one database):
a job's round trip with its request id, retries, and beat's periodic heartbeat.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests

from courier.testing.containers import LOOPBACK
from tests.integration.processes import ApiClient, Courier, CourierProcess
from tests.integration.services import RedisServer

HEARTBEAT_INTERVAL = 1


@dataclass
class Stack:
    api: CourierProcess
    worker: CourierProcess
    beat: CourierProcess
    client: ApiClient


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    courier = Courier(tmp_path_factory.mktemp("stack"))
    try:
        url = redis_server.fresh_url()
        env = {"HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL), "BEAT_LOCK_TIMEOUT": "3"}
        worker = courier.start("worker", url, **env)
        beat = courier.start("beat", url, **env)
        api = courier.start("api", url, **env)
        api.wait_http()
        worker.wait_worker_ready()
        yield Stack(api, worker, beat, api.api())
    finally:
        courier.finish(request)


@pytest.mark.timeout(90)
def test_job_round_trip_carries_the_request_id_into_the_worker_log(stack: Stack) -> None:
    request_id = f"itest-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()

    response = stack.client.submit("demo.add", {"a": 2, "b": 3}, request_id=request_id)

    assert response.status_code == 202, response.text
    assert response.headers["X-Request-ID"] == request_id
    job_id = response.json()["id"]
    assert response.json() == {"id": job_id, "state": "PENDING"}
    location = response.headers["Location"]
    assert location.endswith(f"/v1/jobs/{job_id}")
    body = stack.client.wait_for_job_at(urlsplit(location).path)
    print(f"\ndemo.add round trip: {time.monotonic() - started:.2f}s")
    assert body == {"id": job_id, "task": "demo.add", "state": "SUCCESS", "result": 5}

    added = stack.worker.wait_for_event("added", timeout=5, task_id=job_id)
    assert added[0]["request_id"] == request_id
    assert added[0]["total"] == 5
    # The API logged the same id on its access line.
    stack.api.wait_for_event("request", timeout=5, request_id=request_id, path="/v1/jobs")


@pytest.mark.timeout(60)
def test_job_without_a_token_is_refused(stack: Stack) -> None:
    response = stack.client.request(
        "POST", "/v1/jobs", json_body={"task": "demo.add", "args": {"a": 1, "b": 1}}, auth=False
    )

    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"


@pytest.mark.timeout(90)
def test_flaky_job_is_retried_until_it_succeeds(stack: Stack) -> None:
    started = time.monotonic()
    job_id = stack.client.submit_ok("demo.flaky", {"failures": 2})

    body = stack.client.wait_for_job(job_id, timeout=30)

    print(f"\ndemo.flaky with 2 failures: SUCCESS after {time.monotonic() - started:.2f}s")
    assert body["result"] == {"attempts": 3}
    failures = stack.worker.events("transient failure", task_id=job_id)
    assert [line["attempt"] for line in failures] == [1, 2]
    assert stack.worker.events("succeeded", task_id=job_id)[0]["attempt"] == 3


@pytest.mark.timeout(60)
def test_beat_heartbeat_runs_periodically(stack: Stack) -> None:
    deadline = time.monotonic() + 15
    first: dict[str, float | None] = {}
    while time.monotonic() < deadline:
        response = stack.client.get("/v1/demo/heartbeat")
        assert response.status_code == 200, response.text
        first = response.json()
        if first["last_run"] is not None:
            break
        time.sleep(0.3)
    assert first.get("last_run") is not None, f"no heartbeat within 15s: {first}"
    assert first["interval_seconds"] == HEARTBEAT_INTERVAL

    time.sleep(2.5)
    second = stack.client.get("/v1/demo/heartbeat").json()

    print(f"\nheartbeat age: first read {first['age_seconds']}s, second {second['age_seconds']}s")
    assert second["last_run"] is not None
    assert second["last_run"] > first["last_run"], "the heartbeat did not run again"
    assert second["age_seconds"] is not None
    assert 0 <= second["age_seconds"] < 5


def post(stack: Stack, task: str, args: dict[str, Any], prefer: str | None) -> requests.Response:
    headers = {"Prefer": prefer} if prefer is not None else {}
    return stack.client.request(
        "POST", "/v1/jobs", json_body={"task": task, "args": args}, headers=headers
    )


@pytest.mark.timeout(90)
def test_prefer_wait_answers_with_the_result_when_the_job_finishes_in_time(stack: Stack) -> None:
    started = time.monotonic()
    done = post(stack, "demo.add", {"a": 20, "b": 22}, "wait=5")
    took = time.monotonic() - started

    assert done.status_code == 200, done.text
    assert done.headers["Preference-Applied"] == "wait=5"
    body = done.json()
    assert (body["task"], body["state"], body["result"]) == ("demo.add", "SUCCESS", 42)
    assert done.headers["Location"] == f"/v1/jobs/{body['id']}"
    failed = post(stack, "demo.flaky", {"failures": 0}, "respond-async, wait=5")
    assert failed.status_code == 200
    assert failed.json()["result"] == {"attempts": 1}
    print(f"\nPOST with Prefer: wait=5: 200 with the result after {took * 1000:.1f} ms")
    assert took < 5


@pytest.mark.timeout(90)
def test_prefer_wait_gives_up_at_its_deadline_and_a_read_can_wait_again(stack: Stack) -> None:
    started = time.monotonic()
    pending = post(stack, "demo.sleep", {"seconds": 2}, "wait=1")
    waited = time.monotonic() - started
    assert pending.status_code == 202, pending.text
    assert pending.json()["state"] == "PENDING"
    assert 0.9 < waited < 1.9, waited

    location = pending.headers["Location"]
    read = stack.client.request("GET", location, headers={"Prefer": "wait=10"})
    assert read.status_code == 200
    assert read.headers["Preference-Applied"] == "wait=10"
    assert (read.json()["state"], read.json()["result"]) == ("SUCCESS", 2)
    # A finished job answers at once, whatever the wait.
    started = time.monotonic()
    again = stack.client.request("GET", location, headers={"Prefer": "wait=10"})
    assert again.json()["state"] == "SUCCESS"
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-1", "wait", "lenient", "wait=1e9x"])
def test_an_unreadable_preference_is_ignored(stack: Stack, prefer: str) -> None:
    response = post(stack, "demo.add", {"a": 1, "b": 1}, prefer)
    assert response.status_code == 202, response.text
    assert "Preference-Applied" not in response.headers


def test_prefer_wait_is_capped_by_prefer_wait_max(stack: Stack) -> None:
    response = post(stack, "demo.sleep", {"seconds": 0.2}, "wait=600")
    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "wait=10"  # PREFER_WAIT_MAX's default


def scrape(process: CourierProcess) -> dict[str, float]:
    """The samples of a process's metrics exporter, by name with labels."""
    text = requests.get(f"http://127.0.0.1:{process.metrics_port}/metrics", timeout=10).text
    samples = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name and not name.startswith("#"):
            samples[name] = float(value)
    return samples


def tasks(samples: dict[str, float], task: str, state: str) -> float:
    return samples.get(f'courier_tasks_total{{state="{state}",task="{task}"}}', 0.0)


@pytest.mark.timeout(120)
def test_the_worker_counts_its_tasks_by_state_and_beat_its_ticks(stack: Stack) -> None:
    before = scrape(stack.worker)
    ids = [
        stack.client.submit_ok("demo.add", {"a": 1, "b": 2}),
        stack.client.submit_ok("demo.flaky", {"failures": 1}),
        stack.client.submit_ok("demo.fail", {"message": "no stock"}),
    ]
    for job_id, state in zip(ids, ("SUCCESS", "SUCCESS", "FAILURE"), strict=True):
        stack.client.wait_for_job(job_id, states=(state,), timeout=30)
    failed = stack.client.job(ids[2])
    assert failed["error"] == {"type": "PublicError", "message": "no stock"}

    after = scrape(stack.worker)
    delta = {
        (task, state): tasks(after, task, state) - tasks(before, task, state)
        for task in ("demo.add", "demo.flaky", "demo.fail")
        for state in ("started", "succeeded", "failed", "retried")
    }
    print(f"\nworker metrics after three jobs: { {k: v for k, v in delta.items() if v} }")
    assert delta[("demo.add", "started")] == delta[("demo.add", "succeeded")] == 1
    assert delta[("demo.flaky", "retried")] == 1
    assert delta[("demo.flaky", "started")] == 2  # the first attempt and the retry
    assert delta[("demo.fail", "failed")] == 1
    count = 'courier_task_duration_seconds_count{task="demo.add"}'
    assert after[count] - before.get(count, 0) == 1
    assert 'courier_queue_depth{queue="celery"}' in after

    beat = scrape(stack.beat)
    assert time.time() - beat["courier_beat_last_tick_timestamp_seconds"] < 30
    assert beat["courier_beat_lock_held"] == 1


@pytest.mark.timeout(90)
def test_waiting_requests_share_one_subscription_per_web_process(
    stack: Stack, redis_server: RedisServer
) -> None:
    """Twelve requests wait at once, two of them for the same job: every web process waits over
    one subscriber connection, and each process keeps a thread free (at most 3 of its 4
    threads wait; the others answer at once)."""
    admin = redis.Redis(host=LOOPBACK, port=redis_server.port, password=redis_server.password)
    shared = post(stack, "demo.sleep", {"seconds": 0.3}, None).headers["Location"]
    answers: list[requests.Response] = []
    subscribers: list[int] = []

    def wait_for(index: int) -> None:
        if index < 2:  # the same job, twice
            answers.append(stack.client.request("GET", shared, headers={"Prefer": "wait=5"}))
        else:
            answers.append(post(stack, "demo.sleep", {"seconds": 0.3}, "wait=5"))

    threads = [threading.Thread(target=wait_for, args=(index,)) for index in range(12)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        # Result subscriptions are channels; the worker's remote control (kombu's fanout) is
        # a pattern subscription of its own.
        clients = admin.client_list(_type="pubsub")
        subscribers.append(sum(int(client["psub"]) == 0 for client in clients))
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    admin.close()

    waited = [answer for answer in answers if "Preference-Applied" in answer.headers]
    print(
        f"\n12 waiting requests: {len(waited)} waited, {len(answers) - len(waited)} answered at "
        f"once; subscriber connections at most {max(subscribers)}"
    )
    assert all(answer.status_code == 200 for answer in waited)
    assert all(answer.json()["state"] == "SUCCESS" for answer in waited)
    assert all(answer.status_code in (200, 202) for answer in answers)
    assert 2 <= len(waited) <= 2 * 3  # two web processes, three waiting threads each
    assert max(subscribers) <= 2  # one per web process, whatever the number of waits
