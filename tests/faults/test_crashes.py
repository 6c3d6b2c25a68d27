"""Crashes, signals and outages against the built image and a real Redis, each on its own
private network. Every test prints what it measured (the README's Reliability table).

1. a worker SIGKILLed mid-job, three times, under 200 jobs: nothing lost;
2. a worker stopped with SIGTERM: running jobs finish, the rest stay queued, exit 0;
3. the API stopped under load: no request in flight is dropped, no 5xx;
4. Redis stopped for ten seconds: the API answers 503 and stays up; jobs running through the
   outage finish once, the queued ones run, new ones are accepted again;
5. two beats: each periodic run is sent once; a standby takes over from a killed holder.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from testcontainers.core.container import DockerContainer

from courier.testing.containers import API_PORT, exit_code
from tests.faults.helpers import (
    LOADGEN,
    REDIS_URL,
    container_status,
    count_by_task,
    docker_kill,
    docker_stop,
    events,
    loadgen_summary,
    python_script,
    timestamp,
    wait_events,
    wait_log_count,
)
from tests.stack import ApiClient, Stack, wait_until


@pytest.fixture
def system(courier_image: str) -> Iterator[Stack]:
    with Stack(courier_image) as created:
        yield created


def wait_all_succeeded(client: ApiClient, job_ids: list[str], timeout: float) -> dict[str, str]:
    """Poll until every job is SUCCESS (or `timeout`); the last state seen of each job."""
    states = dict.fromkeys(job_ids, "PENDING")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job_id in [j for j, state in states.items() if state != "SUCCESS"]:
            states[job_id] = client.job(job_id)["state"]
        if all(state == "SUCCESS" for state in states.values()):
            break
        time.sleep(0.5)
    return states


# -- 1. worker SIGKILL mid-job -----------------------------------------------------------------

KILL_JOBS = 200
KILL_SLEEP = 0.5
KILLS = 3
KILL_VISIBILITY_TIMEOUT = 10


@pytest.mark.timeout(420)
def test_worker_killed_mid_job_loses_nothing(system: Stack) -> None:
    env = {
        "BROKER_URL": REDIS_URL,
        "VISIBILITY_TIMEOUT": str(KILL_VISIBILITY_TIMEOUT),
        # No job may outlive its visibility timeout (courier refuses the combination).
        "TASK_TIME_LIMIT": str(KILL_VISIBILITY_TIMEOUT - 2),
        "WORKER_CONCURRENCY": "2",
    }
    system.add_redis()
    api = system.courier("api", env)
    steady = system.courier("worker", env, name=f"worker-steady-{system.suffix}")
    victim = system.courier("worker", env, name=f"worker-victim0-{system.suffix}")
    workers: list[DockerContainer] = [steady, victim]
    client = system.api_client(api)
    client.wait_ready()
    steady.wait_until_ready()
    victim.wait_until_ready()

    started = time.monotonic()
    job_ids = [client.submit("demo.sleep", {"seconds": KILL_SLEEP}) for _ in range(KILL_JOBS)]
    submitted_in = time.monotonic() - started

    kills: list[dict[str, Any]] = []
    for round_ in range(1, KILLS + 1):
        # Kill only a worker that is running jobs: it has logged some `sleeping`.
        wait_events(victim, "sleeping", 4, timeout=90)
        killed_at = docker_kill(victim)
        assert exit_code(victim, timeout=30) == 137
        kills.append({"victim": victim, "at": killed_at})
        victim = system.courier("worker", env, name=f"worker-victim{round_}-{system.suffix}")
        workers.append(victim)

    states = wait_all_succeeded(client, job_ids, timeout=240)
    total = time.monotonic() - started
    last_kill_to_done = time.time() - kills[-1]["at"]

    sleeping = count_by_task(workers, "sleeping")
    slept = count_by_task(workers, "slept")
    succeeded = [j for j, state in states.items() if state == "SUCCESS"]
    lost = [j for j in job_ids if slept[j] == 0 or states[j] != "SUCCESS"]
    run_twice = sorted(j for j in job_ids if slept[j] > 1)
    started_twice = sorted(j for j in job_ids if sleeping[j] > 1)

    print(
        f"\n[worker SIGKILL] {KILL_JOBS} x demo.sleep({KILL_SLEEP}) on 2 workers (concurrency 2), "
        f"VISIBILITY_TIMEOUT={KILL_VISIBILITY_TIMEOUT}s, {KILLS} kills; submitted in "
        f"{submitted_in:.1f}s"
    )
    interrupted_total = 0
    for number, kill in enumerate(kills, start=1):
        dead = kill["victim"]
        dead_sleeping = {str(line["task_id"]) for _, line in events([dead], "sleeping")}
        dead_slept = {str(line["task_id"]) for _, line in events([dead], "slept")}
        interrupted = dead_sleeping - dead_slept
        interrupted_total += len(interrupted)
        others = [w for w in workers if w is not dead]
        redone = [
            timestamp(line)
            for _, line in events(others, "slept")
            if str(line["task_id"]) in interrupted
        ]
        recovery = max(redone) - kill["at"] if redone else float("nan")
        print(
            f"  kill #{number}: {dead._name} had run {len(dead_slept)} jobs, "
            f"{len(interrupted)} interrupted mid-job; all of those finished on another worker "
            f"{recovery:.1f}s after the kill"
        )
        redone_ids = {str(line["task_id"]) for _, line in events(others, "slept")}
        assert interrupted <= redone_ids, f"kill #{number}: interrupted jobs not redone"
    print(
        f"  submitted {KILL_JOBS}, completed {len(succeeded)}, lost {len(lost)}, "
        f"started twice {len(started_twice)}, completed twice {len(run_twice)}; "
        f"all done {total:.1f}s after the first submission, {last_kill_to_done:.1f}s after "
        f"the last kill"
    )

    assert not lost, f"{len(lost)} jobs lost: {lost[:5]}"
    assert len(succeeded) == KILL_JOBS
    assert interrupted_total > 0, "no kill hit a worker in the middle of a job"
    # At least once: only a job interrupted by a kill (at most `concurrency` per kill) may run
    # twice; a visibility timeout too short for the jobs would redeliver many more.
    assert len(started_twice) <= KILLS * 2, started_twice
    assert len(run_twice) <= KILLS * 2, run_twice


# -- 2. worker SIGTERM ---------------------------------------------------------------------------

TERM_JOBS = 6
TERM_SLEEP = 3
STOP_GRACE = 30


@pytest.mark.timeout(240)
def test_worker_sigterm_finishes_running_jobs_and_requeues_the_rest(system: Stack) -> None:
    env = {"BROKER_URL": REDIS_URL, "WORKER_CONCURRENCY": "2"}
    system.add_redis()
    api = system.courier("api", env)
    first = system.courier("worker", env, name=f"worker-stopped-{system.suffix}")
    client = system.api_client(api)
    client.wait_ready()
    first.wait_until_ready()

    job_ids = [client.submit("demo.sleep", {"seconds": TERM_SLEEP}) for _ in range(TERM_JOBS)]
    running: list[str] = []

    def two_started() -> bool:
        running[:] = [j for j in job_ids if client.job(j)["state"] == "STARTED"]
        return len(running) >= 2

    wait_until(two_started, 60, interval=0.1, what="two jobs STARTED")
    sigterm_at = time.time()
    stop_took = docker_stop(first, STOP_GRACE)
    code = exit_code(first, timeout=10)

    received = {
        str(line["event"]).partition("[")[2].partition("]")[0]
        for _, line in events([first], lambda text: text.endswith(" received"))
    }
    sleeping = count_by_task([first], "sleeping")
    slept_by_first = count_by_task([first], "slept")
    states_at_stop = {j: client.job(j)["state"] for j in job_ids}
    reserved_not_started = received - set(sleeping)
    last_slept = max(timestamp(line) for _, line in events([first], "slept"))
    exit_lag = sigterm_at + stop_took - last_slept

    second = system.courier("worker", env, name=f"worker-fresh-{system.suffix}")
    restarted = time.monotonic()
    states = wait_all_succeeded(client, job_ids, timeout=90)
    rest_done_in = time.monotonic() - restarted
    slept_all = count_by_task([first, second], "slept")
    lost = [j for j in job_ids if states[j] != "SUCCESS" or slept_all[j] == 0]
    twice = [j for j in job_ids if slept_all[j] > 1]

    print(
        f"\n[worker SIGTERM] {TERM_JOBS} x demo.sleep({TERM_SLEEP}), concurrency 2: docker stop "
        f"-t {STOP_GRACE} took {stop_took:.1f}s ({exit_lag:.1f}s after its last job finished), "
        f"exit code {code}; running at the signal "
        f"{len(running)} -> finished by the stopped worker {sum(slept_by_first.values())}; "
        f"received by it {len(received)}, reserved but not started {len(reserved_not_started)}; "
        f"the other {TERM_JOBS - len(sleeping)} completed on a new worker in {rest_done_in:.1f}s; "
        f"submitted {TERM_JOBS}, completed {TERM_JOBS - len(lost)}, lost {len(lost)}, "
        f"run twice {len(twice)}"
    )
    assert code == 0
    assert stop_took < STOP_GRACE, "the worker had to be killed after the grace period"
    assert stop_took >= 0.5, "the worker exited without waiting for its jobs"
    for job_id in running:
        assert slept_by_first[job_id] == 1, f"running job {job_id} not finished before exit"
        assert states_at_stop[job_id] == "SUCCESS"
    # Whatever it started it finished; whatever else it had taken went back to the queue.
    assert set(sleeping) == set(slept_by_first)
    assert all(states_at_stop[j] == "PENDING" for j in job_ids if j not in sleeping)
    assert not lost, lost
    assert not twice, twice


# -- 3. API SIGTERM under load -----------------------------------------------------------------

LOAD_SECONDS = 12
SIGTERM_AFTER = 3


@pytest.mark.timeout(240)
def test_api_sigterm_under_load_drops_no_request(system: Stack) -> None:
    env = {"BROKER_URL": REDIS_URL}
    system.add_redis()
    api_name = f"courier-api-{system.suffix}"
    api = system.courier("api", env, name=api_name)
    system.api_client(api).wait_ready()

    loadgen = python_script(
        system,
        LOADGEN,
        {
            "TARGET_HOST": api_name,
            "TARGET_PORT": str(API_PORT),
            "TOKEN": system.token,
            "THREADS": "4",
            "DURATION": str(LOAD_SECONDS),
            "MAX_REQUESTS": "3000",
        },
        name=f"loadgen-{system.suffix}",
    )
    time.sleep(SIGTERM_AFTER)
    assert container_status(loadgen) == "running", "the load generator ended early"
    sigterm_at = time.time()
    stop_took = docker_stop(api, STOP_GRACE)
    code = exit_code(api, timeout=10)
    assert exit_code(loadgen, timeout=LOAD_SECONDS + 60) == 0
    summary = loadgen_summary(loadgen)

    records = summary["records"]
    ok = [r for r in records if r[0] == "ok"]
    ok_after = [r for r in ok if r[2] > sigterm_at]
    in_flight = [r for r in ok if r[1] <= sigterm_at < r[2]]
    refused_before = [r for r in records if r[0] == "refused" and r[1] < sigterm_at]
    print(
        f"\n[API SIGTERM] load: 4 threads for {LOAD_SECONDS}s, docker stop -t {STOP_GRACE} after "
        f"{SIGTERM_AFTER}s took {stop_took:.2f}s (GRACEFUL_TIMEOUT 30s), exit code {code}; "
        f"requests {summary['requests']}: {summary['counts']}, statuses {summary['statuses']}, "
        f"errors {summary['errors']}; ok after SIGTERM {len(ok_after)} (in flight at the "
        f"signal {len(in_flight)})"
    )
    assert code == 0
    assert stop_took < STOP_GRACE
    assert summary["counts"].get("5xx", 0) == 0
    assert summary["counts"].get("reset", 0) == 0, summary["errors"]
    assert not refused_before, "connections refused before the SIGTERM"
    assert len(ok) > 50, "too little load to say anything"
    assert ok_after, "no request completed after the SIGTERM"


GRACEFUL_TIMEOUT = 5
STOP_MARGIN = 3.0  # gunicorn's stop loop, its SIGKILL of the stuck worker, and docker's overhead


@pytest.mark.timeout(120)
def test_api_stop_with_a_stuck_request_is_bounded_by_graceful_timeout(system: Stack) -> None:
    """A request still in flight (its body never completes) holds the API's stop for the whole
    GRACEFUL_TIMEOUT and no longer: then gunicorn kills its worker and exits, well before
    `docker stop`'s own grace period would."""
    env = {"BROKER_URL": REDIS_URL, "GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT)}
    system.add_redis()
    api = system.courier("api", env)
    client = system.api_client(api)
    client.wait_ready()
    host, _, port = client.base_url.removeprefix("http://").rpartition(":")
    head = (
        "POST /v1/jobs HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Authorization: Bearer {system.token}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 1000\r\n"
        "\r\n"
        '{"task": "demo.add", '
    )
    with socket.create_connection((host, int(port)), timeout=STOP_GRACE + 10) as stuck:
        stuck.sendall(head.encode())
        # The other worker still answers: the API is up while one request hangs on its body.
        assert client.http_get("/healthz").status_code == 200
        stop_took = docker_stop(api, STOP_GRACE)
        code = exit_code(api, timeout=10)
        try:
            answer = stuck.recv(65536)
        except ConnectionResetError:
            answer = b""  # closed with the killed worker: no response either way
    print(
        f"\n[API stop, stuck request] GRACEFUL_TIMEOUT {GRACEFUL_TIMEOUT}s, docker stop -t "
        f"{STOP_GRACE}: took {stop_took:.2f}s, exit code {code}; the stuck client got "
        f"{len(answer)} bytes"
    )
    assert stop_took >= GRACEFUL_TIMEOUT - 0.5, "the request in flight was not given its time"
    assert stop_took < GRACEFUL_TIMEOUT + STOP_MARGIN, "the stop outlasted GRACEFUL_TIMEOUT"
    assert code == 0
    assert answer == b"", "the stuck request was answered"


# -- 4. broker restart -------------------------------------------------------------------------

OUTAGE_SECONDS = 10
LONG_JOBS = 2  # running when Redis stops, still running when it is back
LONG_SLEEP = 18
SHORT_JOBS = 6  # queued behind them
SHORT_SLEEP = 1
MID_SLEEP = 4  # started just before Redis stops: finishes during the outage


@pytest.mark.timeout(300)
def test_broker_restart_api_answers_503_and_everything_recovers(system: Stack) -> None:
    # The default VISIBILITY_TIMEOUT (an hour): nothing here may rely on a redelivery.
    env = {"BROKER_URL": REDIS_URL, "WORKER_CONCURRENCY": "3"}
    redis = system.add_redis("--appendonly", "yes")
    api = system.courier("api", env)
    worker = system.courier("worker", env, name=f"worker-{system.suffix}")
    client = system.api_client(api)
    client.wait_ready()
    worker.wait_until_ready()

    long_ids = [client.submit("demo.sleep", {"seconds": LONG_SLEEP}) for _ in range(LONG_JOBS)]
    mid_id = client.submit("demo.sleep", {"seconds": MID_SLEEP})
    short_ids = [client.submit("demo.sleep", {"seconds": SHORT_SLEEP}) for _ in range(SHORT_JOBS)]
    before = [*long_ids, mid_id, *short_ids]
    wait_until(
        lambda: all(client.job(j)["state"] == "STARTED" for j in [*long_ids, mid_id]),
        30,
        what="the long jobs and the one finishing during the outage STARTED",
    )

    redis_box = redis.get_wrapped_container()
    redis_box.stop(timeout=10)
    down_at = time.monotonic()

    probes: dict[str, list[tuple[int, str, float]]] = {}
    while time.monotonic() - down_at < OUTAGE_SECONDS - 2:
        for method, path in (("POST", "/v1/jobs"), ("GET", "/readyz"), ("GET", "/healthz")):
            asked = time.monotonic()
            response = client.session.request(
                method,
                client.base_url + path,
                json={"task": "demo.add", "args": {"a": 1, "b": 2}} if method == "POST" else None,
                timeout=30,
            )
            probes.setdefault(f"{method} {path}", []).append(
                (
                    response.status_code,
                    response.headers.get("content-type", ""),
                    time.monotonic() - asked,
                )
            )
        time.sleep(0.5)
    api_status = container_status(api)
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))

    redis_box.start()
    up_at = time.monotonic()
    up_wall = time.time()
    wait_log_count(redis, "Ready to accept connections", 2, timeout=30)
    redis_ready_in = time.monotonic() - up_at

    # A new job is accepted and run without restarting anything.
    after_id: list[str] = []

    def accepted() -> bool:
        response = client.session.post(
            client.base_url + "/v1/jobs",
            json={"task": "demo.add", "args": {"a": 2, "b": 3}},
            timeout=15,
        )
        if response.status_code == 202:
            after_id.append(response.json()["id"])
        return bool(after_id)

    wait_until(accepted, 30, interval=0.5, what="a job accepted after the outage")
    api_back_in = time.monotonic() - up_at
    body = client.wait(after_id[0], timeout=max(1.0, 30 - (time.monotonic() - up_at)))
    worker_back_in = time.monotonic() - up_at
    ready_back = client.http_get("/readyz").status_code
    states = wait_all_succeeded(client, before, timeout=60)
    before_done_in = time.monotonic() - up_at

    reconnected = [
        timestamp(line) - up_wall
        for _, line in events([worker], lambda text: text.startswith("Connected to redis"))
        if timestamp(line) > up_wall
    ]
    reconnect_in = min(reconnected, default=float("nan"))
    sleeping = count_by_task([worker], "sleeping")
    slept = count_by_task([worker], "slept")
    lost = [j for j in before if states[j] != "SUCCESS" or slept[j] == 0]
    twice = [j for j in before if sleeping[j] > 1 or slept[j] > 1]
    print(
        f"\n[broker restart] Redis (appendonly) down {OUTAGE_SECONDS}s; accepted before: "
        f"{LONG_JOBS} x demo.sleep({LONG_SLEEP}) running across the outage, 1 x "
        f"demo.sleep({MID_SLEEP}) finishing during it, {SHORT_JOBS} x "
        f"demo.sleep({SHORT_SLEEP}) queued; VISIBILITY_TIMEOUT default (3600s)"
    )
    for name, answers in probes.items():
        codes = sorted({status for status, _, _ in answers})
        slowest = max(seconds for _, _, seconds in answers)
        print(f"  during the outage {name}: {len(answers)} x {codes}, slowest {slowest:.2f}s")
    print(
        f"  API container {api_status} throughout; after Redis restarted (ready in "
        f"{redis_ready_in:.1f}s): the worker reconnected after {reconnect_in:.1f}s, "
        f"a job was accepted after {api_back_in:.1f}s, a new demo.add "
        f"completed after {worker_back_in:.1f}s, all {len(before)} earlier jobs done after "
        f"{before_done_in:.1f}s; submitted {len(before)}, completed {len(before) - len(lost)}, "
        f"lost {len(lost)}, run twice {len(twice)}"
    )

    assert api_status == "running"
    for status, content_type, _ in probes["POST /v1/jobs"]:
        assert status == 503
        assert content_type.startswith("application/problem+json")
    assert {status for status, _, _ in probes["GET /readyz"]} == {503}
    assert {status for status, _, _ in probes["GET /healthz"]} == {200}
    assert body["state"] == "SUCCESS"
    assert body["result"] == 5
    assert reconnected, "the worker did not log a reconnection"
    assert worker_back_in <= 30
    assert ready_back == 200
    assert not lost, {j: states[j] for j in lost}
    assert not twice, twice


# -- 5. two beats ------------------------------------------------------------------------------

HEARTBEAT_INTERVAL = 2
BEAT_LOCK_TIMEOUT = 5
OBSERVE_SECONDS = 60
SENDING = "Scheduler: Sending due task demo.heartbeat"


def sends(beat: DockerContainer) -> list[float]:
    return [timestamp(line) for _, line in events([beat], lambda t: t.startswith(SENDING))]


@pytest.mark.timeout(300)
def test_two_beats_send_each_run_once_and_fail_over(system: Stack) -> None:
    env = {
        "BROKER_URL": REDIS_URL,
        "HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
        "BEAT_LOCK_TIMEOUT": str(BEAT_LOCK_TIMEOUT),
    }
    system.add_redis()
    worker = system.courier("worker", env, name=f"worker-{system.suffix}")
    worker.wait_until_ready()
    beats = [system.courier("beat", env, name=f"beat-{letter}-{system.suffix}") for letter in "ab"]
    wait_until(
        lambda: any(sends(beat) for beat in beats), 60, interval=0.3, what="a first heartbeat"
    )
    window_start = min(t for beat in beats for t in sends(beat))
    time.sleep(max(0.0, window_start + OBSERVE_SECONDS - time.time()))
    window_end = window_start + OBSERVE_SECONDS

    per_beat = [[t for t in sends(beat) if window_start <= t < window_end] for beat in beats]
    holder_index = 0 if len(per_beat[0]) >= len(per_beat[1]) else 1
    holder, standby = beats[holder_index], beats[1 - holder_index]
    sent = sorted(t for times in per_beat for t in times)
    ran = [
        timestamp(line)
        for _, line in events([worker], "heartbeat")
        if window_start <= timestamp(line) < window_end + 1
    ]
    gaps = [b - a for a, b in pairwise(sent)]
    expected = OBSERVE_SECONDS / HEARTBEAT_INTERVAL

    killed_at = docker_kill(holder)
    takeover = wait_until(
        lambda: any(t > killed_at for t in sends(standby)),
        BEAT_LOCK_TIMEOUT + HEARTBEAT_INTERVAL + 20,
        interval=0.2,
        what="the standby beat sending",
    )
    first_send = min(t for t in sends(standby) if t > killed_at) - killed_at
    locked = [
        timestamp(line)
        for _, line in events([standby], lambda t: t.startswith("holding the beat lock"))
    ]
    lock_taken = min((t for t in locked if t > killed_at), default=float("nan")) - killed_at
    time.sleep(HEARTBEAT_INTERVAL * 3)
    after = [t for t in sends(standby) if t > killed_at]
    after_gaps = [b - a for a, b in pairwise(after)]

    print(
        f"\n[two beats] HEARTBEAT_INTERVAL={HEARTBEAT_INTERVAL}s, BEAT_LOCK_TIMEOUT="
        f"{BEAT_LOCK_TIMEOUT}s, {OBSERVE_SECONDS}s window: sent {len(sent)} (expected "
        f"{expected:.0f}), by beat {[len(t) for t in per_beat]}, ran on the worker {len(ran)}, "
        f"gaps between sends {min(gaps):.2f}-{max(gaps):.2f}s; SIGKILL of the holder: standby "
        f"took the lock after {lock_taken:.1f}s, first send {first_send:.1f}s after the kill "
        f"(polled {takeover:.1f}s), then {len(after)} sends, gaps "
        f"{', '.join(f'{g:.1f}' for g in after_gaps)}s"
    )
    assert abs(len(sent) - expected) <= 2, sent
    assert abs(len(ran) - len(sent)) <= 2, (len(ran), len(sent))
    assert min(per_beat[0], per_beat[1], key=len) == [], "both beats sent in the same window"
    assert min(gaps) > HEARTBEAT_INTERVAL / 2, "a run was sent twice"
    assert first_send <= BEAT_LOCK_TIMEOUT + HEARTBEAT_INTERVAL + 2 * (BEAT_LOCK_TIMEOUT / 3) + 2
    assert all(g > HEARTBEAT_INTERVAL / 2 for g in after_gaps), "a burst after the takeover"
    assert not any(t > killed_at for t in sends(holder))
