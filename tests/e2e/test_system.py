"""The whole system from the built image, on a private Docker network: api + worker + beat with
Redis, and again with RabbitMQ as the broker (Redis as the result backend).

Each broker's system is a `courier.testing.CourierStack`, started once for this module; every
courier container runs hardened (read-only root, tmpfs /tmp, no capabilities,
no-new-privileges, uid 65532).
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from courier.testing import CourierContainer, CourierStack
from tests.conftest import failed
from tests.e2e.system import NONROOT, as_json, events, wait_for_lines
from tests.stack import ApiClient, dump_logs, health, wait_until

HEARTBEAT_INTERVAL = 1.0

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def system(request: pytest.FixtureRequest, courier_image: str) -> Iterator[CourierStack]:
    started = time.monotonic()
    env = {"HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL)}
    with CourierStack(courier_image, request.param, beat=True, env=env) as running:
        print(f"[e2e] {request.param} system ready in {time.monotonic() - started:.1f}s")
        yield running
        if failed(request.node):
            dump_logs(running)


@pytest.fixture(scope="module")
def client(system: CourierStack) -> ApiClient:
    return ApiClient(system.api_url(), system.token)


def worker_lines(system: CourierStack) -> Callable[[], list[dict[str, Any]]]:
    return lambda: system.json_logs("worker")


def test_demo_add_round_trip_carries_the_request_id(
    system: CourierStack, client: ApiClient
) -> None:
    request_id = f"e2e-{uuid.uuid4().hex}"
    started = time.monotonic()
    response = client.session.post(
        f"{client.base_url}/v1/jobs",
        json={"task": "demo.add", "args": {"a": 2, "b": 40.5}},
        headers={"X-Request-ID": request_id},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    assert response.headers["X-Request-ID"] == request_id
    job_id = str(as_json(response)["id"])
    assert response.headers["Location"].endswith(f"/v1/jobs/{job_id}")

    job = client.wait(job_id, timeout=60)
    round_trip = time.monotonic() - started
    assert job == {"id": job_id, "task": "demo.add", "state": "SUCCESS", "result": 42.5}

    # The worker's line for this job carries the job id and the request id sent with it.
    added = wait_for_lines(
        worker_lines(system),
        lambda lines: events(lines, "added", task_id=job_id),
        what=f"'added' line of job {job_id}",
    )
    assert len(added) == 1, added
    line = added[0]
    assert line["request_id"] == request_id
    assert line["task"] == "demo.add"
    assert line["logger"] == "courier.demo"
    assert (line["a"], line["b"], line["total"]) == (2, 40.5, 42.5)
    # Celery's own lines about the task carry them too (the context is bound per task).
    # (Celery logs "succeeded" after storing the result: the line may trail the job's state.)
    succeeded = wait_for_lines(
        worker_lines(system),
        lambda lines: [
            entry
            for entry in lines
            if entry.get("task_id") == job_id and "succeeded" in str(entry.get("event"))
        ],
        what=f"Celery's 'succeeded' line of job {job_id}",
    )
    assert [entry.get("request_id") for entry in succeeded] == [request_id]

    # ... and so does the API's access line for the submission.
    access = events(system.json_logs("api"), "request", request_id=request_id)
    assert [(entry["method"], entry["path"], entry["status"]) for entry in access] == [
        ("POST", "/v1/jobs", 202)
    ]
    print(
        f"[e2e] {system.broker}: demo.add round trip {round_trip * 1000:.0f} ms, "
        f"request id {request_id} in worker line of task {job_id}"
    )


def test_beat_heartbeat_reaches_a_worker(system: CourierStack, client: ApiClient) -> None:
    heartbeats = wait_for_lines(
        worker_lines(system),
        lambda lines: events(lines, "heartbeat", task="demo.heartbeat", logger="courier.demo"),
        count=3,
        timeout=60,
        what="three heartbeat lines in the worker's log",
    )
    body = as_json(client.http_get("/v1/demo/heartbeat"))
    assert body["interval_seconds"] == HEARTBEAT_INTERVAL
    assert body["last_run"] is not None
    assert 0 <= body["age_seconds"] < 10 * HEARTBEAT_INTERVAL, body
    first_run = float(body["last_run"])

    # It keeps running: a later read shows a later run...
    later: dict[str, Any] = {}

    def advanced() -> bool:
        later.update(as_json(client.http_get("/v1/demo/heartbeat")))
        return float(later["last_run"]) > first_run

    waited = wait_until(advanced, 15, interval=0.3, what="a newer heartbeat")
    # ...and the run the API reports is one the worker logged (same timestamp, to the bit; the
    # task stores it before it logs it, so the line may trail the stored value).
    logged_runs: set[float] = set()

    def logged() -> bool:
        lines = events(system.json_logs("worker"), "heartbeat", logger="courier.demo")
        logged_runs.update(float(line["at"]) for line in lines)
        return float(later["last_run"]) in logged_runs

    wait_until(logged, 15, interval=0.3, what="the API's last heartbeat in the worker's log")

    sent = [
        line
        for line in system.json_logs("beat")
        if line.get("event") == "Scheduler: Sending due task demo.heartbeat (demo.heartbeat)"
    ]
    assert len(sent) >= 3
    runs = sorted(logged_runs)
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    median_gap = statistics.median(gaps)
    assert 0.5 * HEARTBEAT_INTERVAL <= median_gap <= 2 * HEARTBEAT_INTERVAL, gaps
    print(
        f"[e2e] {system.broker}: {len(heartbeats)}+ heartbeats (beat sent {len(sent)}), "
        f"median gap {median_gap:.2f}s, API age {body['age_seconds']}s, "
        f"newer run seen after {waited:.1f}s"
    )


# Run inside each container: who the exec'd process and PID 1 (the server) are, and what they may
# do. Uses only the standard library of the image's interpreter (there is no shell).
PROBE = """
import json, os
def status(pid):
    fields = {}
    for row in open(f"/proc/{pid}/status"):
        key, _, value = row.partition(":")
        fields[key] = value.split()
    return fields
def parent(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]
    except OSError:
        return None
def writable(path):
    try:
        with open(path, "w") as handle:
            handle.write("x")
        os.unlink(path)
        return "yes"
    except OSError as error:
        return error.strerror
me, server = status("self"), status(1)
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(),
    "cap_eff": int(me["CapEff"][0], 16), "cap_prm": int(me["CapPrm"][0], 16),
    "cap_bnd": int(me["CapBnd"][0], 16), "no_new_privs": int(me["NoNewPrivs"][0]),
    "server_uids": [int(v) for v in server["Uid"]], "server_gids": [int(v) for v in server["Gid"]],
    "server_cap_eff": int(server["CapEff"][0], 16),
    "server_no_new_privs": int(server["NoNewPrivs"][0]),
    "server_cmd": open("/proc/1/cmdline").read().strip(chr(0)).split(chr(0)),
    "server_children": sum(parent(pid) == "1" for pid in filter(str.isdigit, os.listdir("/proc"))),
    "root_writable": writable("/e2e-probe"), "venv_writable": writable("/opt/venv/e2e-probe"),
    "tmp_writable": writable("/tmp/e2e-probe"),
}))
"""
# PID 1 is always the entrypoint itself, running the role: gunicorn's master (children: its web
# workers), Celery's worker (its pool processes), beat (none), or the supervisor (the 3 roles);
# and, beside each, the metrics exporter.
ENTRYPOINT = ["/opt/venv/bin/python", "-m", "courier"]
EXPECTED_CHILDREN = {"api": (2, 65), "worker": (2, 257), "beat": (1, 1), "all": (4, 4)}


def probe(container: Any) -> dict[str, Any]:
    result = container.get_wrapped_container().exec_run(["/opt/venv/bin/python", "-c", PROBE])
    output = result.output.decode(errors="replace")
    assert result.exit_code == 0, output
    facts: dict[str, Any] = json.loads(output)
    return facts


def assert_hardened(role: str, container: Any) -> dict[str, Any]:
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    host_config, config = wrapped.attrs["HostConfig"], wrapped.attrs["Config"]
    assert host_config["ReadonlyRootfs"] is True, role
    assert host_config["CapDrop"] == ["ALL"], role
    assert not host_config.get("CapAdd"), role
    assert any(opt.startswith("no-new-privileges") for opt in host_config["SecurityOpt"]), role
    assert host_config["Privileged"] is False, role
    assert config["User"] == f"{NONROOT}:{NONROOT}", role
    assert "/tmp" in (host_config.get("Tmpfs") or {}), role

    facts = probe(container)
    assert (facts["uid"], facts["euid"], facts["gid"]) == (NONROOT, NONROOT, NONROOT), facts
    assert facts["server_uids"] == [NONROOT] * 4, facts
    assert facts["server_gids"] == [NONROOT] * 4, facts
    assert facts["cap_eff"] == facts["cap_prm"] == facts["cap_bnd"] == 0, facts
    assert facts["server_cap_eff"] == 0, facts
    assert facts["no_new_privs"] == facts["server_no_new_privs"] == 1, facts
    assert facts["root_writable"] == "Read-only file system", facts
    assert facts["venv_writable"] == "Read-only file system", facts
    assert facts["tmp_writable"] == "yes", facts
    assert facts["server_cmd"] == ENTRYPOINT, facts
    fewest, most = EXPECTED_CHILDREN[role]
    assert fewest <= facts["server_children"] <= most, facts
    return facts


def healthy(container: Any) -> Callable[[], bool]:
    return lambda: health(container) == "healthy"


def test_every_role_runs_hardened_and_healthy(system: CourierStack) -> None:
    roles = {"api": system.api, "worker": system.workers[0], "beat": system.beat}
    for role, container in roles.items():
        waited = wait_until(healthy(container), 90, interval=1, what=f"{role} healthy")
        facts = assert_hardened(role, container)
        server = f"{' '.join(facts['server_cmd'])} with {facts['server_children']} children"
        print(
            f"[e2e] {system.broker} {role}: uid {facts['uid']}, PID 1 {server}, CapEff 0, "
            f"NoNewPrivs 1, read-only root; healthy (waited {waited:.1f}s)"
        )
    # Working under those flags: a job goes through the hardened api and worker.
    assert system.run("demo.add", {"a": -1, "b": 1}) == 0


def test_all_in_one_role_runs_hardened(courier_image: str) -> None:
    """MODE=all (api, worker and beat supervised in one container, embedded broker on /tmp)."""
    started = time.monotonic()
    with CourierContainer(courier_image, "all") as combined:
        ready = time.monotonic() - started
        client = combined.client()
        try:
            job_id = client.submit("demo.add", {"a": 20, "b": 22}, request_id="e2e-all-in-one")
            job = client.wait(job_id, timeout=60)
            assert job == {"id": job_id, "task": "demo.add", "state": "SUCCESS", "result": 42}
            became_healthy = wait_until(healthy(combined), 90, 1, "all healthy")
            facts = assert_hardened("all", combined)
        except BaseException:
            print(combined.logs()[-4000:])
            raise
        print(
            f"[e2e] all: ready after {ready:.1f}s, healthy after {became_healthy:.1f}s more, "
            f"uid {facts['uid']}, PID 1 supervising {facts['server_children']} roles"
        )
