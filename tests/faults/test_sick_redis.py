"""A sick Redis, against the built image on a private network: paused (it takes connections and
never answers), and refusing writes (out of memory). The API answers every request within its
configured timeout with a problem document, says why it is not ready, logs it once, and comes
back without a restart; no accepted job is lost."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from courier.testing.containers import container_logs
from tests.faults.helpers import REDIS_URL, VENV_PYTHON, events
from tests.faults.security_support import redis_cli
from tests.stack import ApiClient, Stack, wait_until

BROKER_TIMEOUT = 2.0
PAUSE_SECONDS = 20
CLIENTS = 2  # one per web worker: each request is answered without waiting for another one
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def system(courier_image: str) -> Iterator[Stack]:
    with Stack(courier_image) as created:
        yield created


def courier_env() -> dict[str, str]:
    return {
        "BROKER_URL": REDIS_URL,
        "BROKER_TIMEOUT": str(BROKER_TIMEOUT),
        "BROKER_CONNECT_TIMEOUT": str(BROKER_TIMEOUT),
        "WEB_CONCURRENCY": str(CLIENTS),
    }


class Load:
    """`CLIENTS` threads submitting and reading jobs until stopped (at most `limit` requests
    each); every answer is kept: (when, request, status, content type, seconds)."""

    def __init__(self, client: ApiClient, limit: int = 2000) -> None:
        self.client = client
        self.limit = limit
        self.answers: list[tuple[float, str, int, str, float]] = []
        self.accepted: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _ask(
        self, session: requests.Session, label: str, method: str, path: str, body: Any = None
    ) -> Any:
        started = time.monotonic()
        try:
            response = session.request(method, self.client.base_url + path, json=body, timeout=30)
            status, kind = response.status_code, response.headers.get("content-type", "")
        except requests.RequestException as error:
            response, status, kind = None, 0, type(error).__name__
        self.answers.append((started, label, status, kind, time.monotonic() - started))
        return response

    def _run(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = self.client.session.headers["Authorization"]
        for _ in range(self.limit):
            if self._stop.is_set():
                return
            job = {"task": "demo.add", "args": {"a": 1, "b": 2}}
            response = self._ask(session, "POST jobs", "POST", "/v1/jobs", job)
            if response is not None and response.status_code == 202:
                job_id = response.json()["id"]
                self.accepted.append(job_id)
                self._ask(session, "GET job", "GET", f"/v1/jobs/{job_id}")
            self._ask(session, "GET readyz", "GET", "/readyz")  # asks both: one timeout
            time.sleep(0.05)


SCRAPE = (
    "import time, urllib.request; t = time.monotonic();"
    "body = urllib.request.urlopen('http://127.0.0.1:9808/metrics', timeout=30).read().decode();"
    "print(round(time.monotonic() - t, 3)); print(body)"
)


def scrape_metrics(container: Any) -> tuple[float, str]:
    """Scrape the container's metrics exporter from inside it: (seconds, the exposition)."""
    result = container.exec([VENV_PYTHON, "-c", SCRAPE])
    output = bytes(result.output).decode(errors="replace")
    assert result.exit_code == 0, output[-2000:]
    seconds, _, body = output.partition("\n")
    return float(seconds), body


@pytest.mark.timeout(300)
def test_a_paused_redis_costs_each_request_one_timeout_and_loses_no_job(system: Stack) -> None:
    redis = system.add_redis("--appendonly", "yes")
    api = system.courier("api", courier_env())
    worker = system.courier("worker", courier_env())
    client = system.api_client(api)
    client.wait_ready()
    worker.wait_until_ready()
    box = redis.get_wrapped_container()

    with Load(client) as load:
        time.sleep(3)
        box.pause()
        paused_at = time.monotonic()
        time.sleep(3)
        scrape_seconds, scraped = scrape_metrics(api)
        time.sleep(max(0.0, PAUSE_SECONDS - (time.monotonic() - paused_at)))
        unpausing_at = time.monotonic()
        box.unpause()
        resumed_at = time.monotonic()
        wait_until(
            lambda: any(a[0] > resumed_at and a[2] == 202 for a in load.answers),
            30,
            what="a job accepted after the pause",
        )
        time.sleep(2)

    during = [a for a in load.answers if paused_at + 0.1 < a[0] + a[4] and a[0] < resumed_at - 0.1]
    slowest = max(during, key=lambda answer: answer[4])
    statuses = Counter((a[1], a[2]) for a in during)
    back_in = min(a[0] for a in load.answers if a[0] > resumed_at and a[2] == 202) - resumed_at
    states = {job: client.job(job)["state"] for job in load.accepted}
    wait_until(
        lambda: all(client.job(job)["state"] == "SUCCESS" for job in load.accepted),
        60,
        what="every accepted job done",
    )
    print(
        f"\n[paused Redis] {PAUSE_SECONDS}s pause, BROKER_TIMEOUT={BROKER_TIMEOUT}s, {CLIENTS} "
        f"clients: {len(during)} answers during the pause {dict(statuses)}; slowest "
        f"{slowest[1]} {slowest[2]} in {slowest[4]:.2f}s; a job accepted {back_in:.2f}s after "
        f"the unpause; {len(load.accepted)} accepted jobs, all done "
        f"(states right after: {Counter(states.values())})"
    )
    assert during, "no request was answered during the pause"
    inside = [a for a in during if a[0] > paused_at + 0.5 and a[0] + a[4] < unpausing_at]
    assert inside
    assert all(status == 503 and kind == PROBLEM_JSON for _, _, status, kind, _ in inside), inside
    assert statuses[("POST jobs", 503)] > 0
    assert statuses[("GET readyz", 503)] > 0
    assert slowest[4] < BROKER_TIMEOUT + 1, slowest
    assert "WORKER TIMEOUT" not in container_logs(api)
    # The metrics exporter answered a scrape during the pause within the broker's timeout: the
    # queue depth (read from the paused Redis) left out, everything else there.
    print(f"[paused Redis] a scrape of the API's metrics answered in {scrape_seconds:.2f}s")
    assert scrape_seconds < BROKER_TIMEOUT + 1.5
    assert "courier_http_requests_total" in scraped
    assert "courier_queue_depth{" not in scraped
    assert not events([api], "unhandled error")


@pytest.mark.timeout(180)
def test_a_redis_refusing_writes_makes_the_api_unready_and_says_why_once(system: Stack) -> None:
    redis = system.add_redis()
    # One web process: each process logs its own changes of state, once.
    api = system.courier("api", {**courier_env(), "WEB_CONCURRENCY": "1"})
    client = system.api_client(api)
    client.wait_ready()

    # Readiness reuses pooled connections: twenty probes open none (or one per pool at most).
    def connections_received() -> int:
        info = redis_cli(redis, "INFO", "stats")
        return int(info.split("total_connections_received:")[1].split()[0])

    for _ in range(5):
        assert client.http_get("/readyz").status_code == 200
    before = connections_received()
    for _ in range(20):
        assert client.http_get("/readyz").status_code == 200
    opened = connections_received() - before
    print(f"\n[readiness] 20 probes opened {opened} new Redis connections")
    assert opened <= 2, opened

    assert redis_cli(redis, "CONFIG", "SET", "maxmemory", "1") == "OK"
    try:
        answers = [client.http_get("/readyz") for _ in range(10)]
        submitted = client.session.post(
            client.base_url + "/v1/jobs",
            json={"task": "demo.add", "args": {"a": 1, "b": 2}},
            timeout=10,
        )
    finally:
        assert redis_cli(redis, "CONFIG", "SET", "maxmemory", "0") == "OK"
    ready_again = wait_until(
        lambda: client.http_get("/readyz").status_code == 200, 30, what="ready again"
    )

    body = answers[-1].json()
    print(
        f"\n[Redis refusing writes] /readyz {answers[-1].status_code}: {body['detail']!r}; "
        f"POST /v1/jobs {submitted.status_code}: {submitted.json()['detail']!r}; ready again "
        f"{ready_again:.1f}s after writes were allowed"
    )
    assert {answer.status_code for answer in answers} == {503}
    assert answers[-1].headers["content-type"] == PROBLEM_JSON
    assert body["checks"]["broker"] == "refuses writes (OOM)"
    assert "broker refuses writes (OOM)" in body["detail"]
    assert submitted.status_code == 503
    assert "refuses writes (OOM)" in submitted.json()["detail"]
    # Logged once per change of state, not once per request (ten probes and a submission).
    changes = events([api], "not answering", component="broker", reason="refuses writes (OOM)")
    assert len(changes) == 1, changes
    wait_until(
        lambda: len(events([api], "answering again", component="broker")) == 1,
        5,
        what="one 'answering again' line",
    )
