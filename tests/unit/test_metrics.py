"""Metrics: the names, labels and types dashboards rely on; the API's counts; and the values of
two gunicorn workers summed by the exporter of a real `python -m courier` API."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from falcon import testing
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from courier.metrics import Metrics, fold_dead_processes
from courier.process.exporter import CLIENT_TIMEOUT, MAX_CONNECTIONS
from courier.queue.app import CourierCelery
from courier.settings import Settings
from courier.testing.logs import parse_json_lines
from tests.conftest import free_port
from tests.unit.conftest import AUTH, TOKEN, clean_environ, dead_redis_url
from tests.unit.test_entrypoint import answers, started, wait_until

# name: (type, labels), as the README documents them.
CONTRACT = {
    "courier_http_requests_total": ("counter", {"route", "method", "status"}),
    "courier_http_request_duration_seconds": ("histogram", {"route", "method"}),
    "courier_jobs_submitted_total": ("counter", {"task"}),
    "courier_jobs_refused_total": ("counter", {"task", "reason"}),
    "courier_tasks_total": ("counter", {"task", "state"}),
    "courier_task_duration_seconds": ("histogram", {"task"}),
    "courier_tasks_redelivered_total": ("counter", {"task"}),
    "courier_beat_last_tick_timestamp_seconds": ("gauge", set()),
    "courier_beat_lock_held": ("gauge", set()),
    "courier_build_info": ("gauge", {"version", "revision"}),
}


def test_every_metric_has_its_documented_name_type_and_labels() -> None:
    metrics = Metrics()
    metrics.http_requests.labels("/healthz", "GET", "200").inc()
    metrics.http_duration.labels("/healthz", "GET").observe(0.01)
    metrics.jobs_submitted.labels("demo.add").inc()
    metrics.jobs_refused.labels("demo.add", "invalid").inc()
    metrics.tasks.labels("demo.add", "started").inc()
    metrics.task_duration.labels("demo.add").observe(0.2)
    metrics.tasks_redelivered.labels("demo.add").inc()
    metrics.beat_last_tick.set(1.0)
    metrics.beat_lock_held.set(1)
    metrics.build_info.labels("1.2.3", "abc").set(1)
    found = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if family.type == "histogram" and sample.name.endswith("_count"):
                found[family.name] = (family.type, set(sample.labels))
            elif not sample.name.endswith(("_created", "_bucket", "_count", "_sum")):
                found[sample.name] = (family.type, set(sample.labels))
    assert found == CONTRACT


def test_the_api_counts_requests_by_route_template_and_submissions_by_task(
    client: testing.TestClient, embedded: tuple[Settings, CourierCelery]
) -> None:
    _, celery = embedded
    value = celery.metrics.registry.get_sample_value
    for _ in range(3):
        client.simulate_get("/healthz")
    job = client.simulate_post(
        "/v1/jobs", json={"task": "demo.add", "args": {"a": 1, "b": 2}}, headers=AUTH
    )
    client.simulate_get(f"/v1/jobs/{job.json['id']}", headers=AUTH)
    client.simulate_post("/v1/jobs", json={"task": "demo.add", "args": {"a": "x"}}, headers=AUTH)
    client.simulate_post("/v1/jobs", json={"task": "rm -rf /", "args": {}}, headers=AUTH)
    client.simulate_get("/no/such/route")

    assert (
        value(
            "courier_http_requests_total", {"route": "/healthz", "method": "GET", "status": "200"}
        )
        == 3
    )
    # A job's id is never a label: the route template is.
    assert (
        value(
            "courier_http_requests_total",
            {"route": "/v1/jobs/{job_id}", "method": "GET", "status": "200"},
        )
        == 1
    )
    assert (
        value(
            "courier_http_requests_total",
            {"route": "(unmatched)", "method": "GET", "status": "404"},
        )
        == 1
    )
    assert (
        value("courier_http_request_duration_seconds_count", {"route": "/healthz", "method": "GET"})
        == 3
    )
    assert value("courier_jobs_submitted_total", {"task": "demo.add"}) == 1
    assert value("courier_jobs_refused_total", {"task": "demo.add", "reason": "invalid"}) == 1
    # Whatever a client names as its task, the label is not its input.
    assert value("courier_jobs_refused_total", {"task": "(unknown)", "reason": "unknown_task"}) == 1
    exposition = generate_latest(celery.metrics.registry).decode()
    assert "rm -rf" not in exposition


def web_workers(log: Path) -> set[int]:
    """The pids gunicorn logged booting workers with."""
    return {
        int(str(line["event"]).split()[-1])
        for line in parse_json_lines(log.read_text())
        if "Booting worker" in str(line.get("event"))
    }


def scrape(port: int) -> dict[str, float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = {}
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            samples[match[1]] = float(match[2])
    return samples


def metrics_dir_of(pids: set[int]) -> Path:
    """The metric files' folder (in /dev/shm, named at random) where these processes write."""
    for folder in Path("/dev/shm").glob("courier-metrics-*"):
        if any((folder / f"counter_{pid}.db").exists() for pid in pids):
            return folder
    raise AssertionError(f"no metric files of {pids}")


def test_two_web_workers_are_summed_by_the_exporter(data_dir: Path, tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    log = tmp_path / "api.log"
    environ = {
        "MODE": "api",
        "PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "API_TOKENS": TOKEN,
        "BROKER_URL": dead_redis_url(),
        "WEB_CONCURRENCY": "2",
        "GRACEFUL_TIMEOUT": "5",
    }
    with started(data_dir, log, **environ) as process:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 30, process, log)
        wait_until(lambda: answers(f"http://127.0.0.1:{metrics_port}/metrics"), 30, process, log)
        healthz = f"http://127.0.0.1:{port}/healthz"
        for _ in range(20):
            assert requests.get(healthz, timeout=5).status_code == 200
        # Every web worker killed: gunicorn starts new ones, and the dead ones' counts stay.
        # Info lines are written in batches: wait for both workers' boot lines.
        wait_until(lambda: len(web_workers(log)) == 2, 10, process, log)
        first = web_workers(log)
        for pid in first:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: len(web_workers(log) - first) == 2, 30, process, log)
        wait_until(lambda: answers(healthz), 30, process, log)
        for _ in range(20):
            assert requests.get(healthz, timeout=5).status_code == 200
        samples = scrape(metrics_port)
        counted = samples['courier_http_requests_total{method="GET",route="/healthz",status="200"}']
        # The dead workers' counts were folded into one file by the scrape; the two live
        # workers have their own.
        files = sorted(p.name for p in metrics_dir_of(web_workers(log) - first).glob("*.db"))
        print(
            f"\n40 requests, the web workers killed in between; the exporter counts "
            f"{counted:.0f}, from the metric files {files}"
        )
        assert counted >= 40  # the waits for a first answer count too
        assert counted <= 40 + 5
        assert "counter_dead.db" in files
        assert not [name for name in files for pid in first if f"_{pid}.db" in name], files
        assert (
            scrape(metrics_port)[
                'courier_http_requests_total{method="GET",route="/healthz",status="200"}'
            ]
            == counted
        )  # a second scrape, after the folding: the same total
        assert any(name.startswith("courier_build_info{") for name in samples)
        # The broker (a dead Redis) is unreachable: the queue metrics are left out, not hung on.
        assert not any(name.startswith("courier_queue_depth{") for name in samples)


def test_metrics_port_zero_serves_none(data_dir: Path) -> None:
    env = clean_environ(data_dir, MODE="beat", BROKER_URL=dead_redis_url(), METRICS_PORT="0")
    code = (
        "from courier.process.exporter import start_exporter;"
        "from courier.settings import load_settings;"
        "print(start_exporter(load_settings()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.stdout.strip() == "None", result.stderr


WRITER = """
import os, sys
from prometheus_client import Counter, Gauge, Histogram
Counter("jobs", "", ["task"]).labels("add").inc(float(sys.argv[1]))
Histogram("took_seconds", "", buckets=(1, 10)).observe(float(sys.argv[1]))
Gauge("tick", "", multiprocess_mode="mostrecent").set(float(sys.argv[1]))
Gauge("busy", "", multiprocess_mode="livesum").set(1)
if sys.argv[2] == "stay":
    print("ready", flush=True)
    sys.stdin.read()
"""


def test_dead_processes_files_are_folded_without_changing_a_scrape(tmp_path: Path) -> None:
    """Three processes write metrics and two of them die: their files become one per kind,
    and the scrape's counters, histograms and latest gauge are what they were."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for amount in ("2", "5"):
        subprocess.run([sys.executable, "-c", WRITER, amount, "exit"], env=env, check=True)
    alive = subprocess.Popen(
        [sys.executable, "-c", WRITER, "7", "stay"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert alive.stdout is not None
        assert alive.stdout.readline() == "ready\n"

        def scrape_folder() -> dict[str, float]:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
            return {
                f"{sample.name}{sorted(sample.labels.items())}": sample.value
                for metric in registry.collect()
                for sample in metric.samples
            }

        before = scrape_folder()
        assert fold_dead_processes(tmp_path) == 2
        after = scrape_folder()
        files = sorted(path.name for path in tmp_path.iterdir())
    finally:
        alive.communicate("")
    print(f"\nafter folding: {files}")
    assert set(files) == {
        "counter_dead.db",
        f"counter_{alive.pid}.db",
        f"gauge_livesum_{alive.pid}.db",
        "gauge_mostrecent_dead.db",
        f"gauge_mostrecent_{alive.pid}.db",
        "histogram_dead.db",
        f"histogram_{alive.pid}.db",
    }
    assert after["jobs_total[('task', 'add')]"] == before["jobs_total[('task', 'add')]"] == 14
    assert after["took_seconds_sum[]"] == before["took_seconds_sum[]"] == 14
    assert after["took_seconds_bucket[('le', '1.0')]"] == 0
    assert after["took_seconds_bucket[('le', '10.0')]"] == 3
    assert after["tick[]"] == before["tick[]"] == 7  # the latest set, by the live process
    assert before["busy[]"] == 3
    assert after["busy[]"] == 1  # only live processes are busy


def test_idle_clients_cannot_hold_the_metrics_port(data_dir: Path) -> None:
    """Idle connections do not stop a scrape, and a request the server refuses is a problem
    document, as on the API's port."""
    metrics_port = free_port()
    env = clean_environ(
        data_dir, MODE="beat", BROKER_URL=dead_redis_url(), METRICS_PORT=str(metrics_port)
    )
    code = (
        "import sys, time\n"
        "from courier.process.exporter import prepare_multiprocess_dir, start_exporter\n"
        "from courier.settings import load_settings\n"
        "settings = load_settings()\n"
        "prepare_multiprocess_dir(settings)\n"
        "start_exporter(settings)\n"
        "sys.stdin.read()\n"  # the exporter lives while its parent does
    )
    parent = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE)
    idle = []
    try:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = time.monotonic() + 20
        while not answers(url):
            assert time.monotonic() < deadline, "the exporter did not answer"
            time.sleep(0.1)
        for _ in range(3):
            idle.append(socket.create_connection(("127.0.0.1", metrics_port)))
        idle[-1].sendall(b"GET /metr")  # half a request line, never finished
        began = time.monotonic()
        assert requests.get(url, timeout=5).status_code == 200
        print(f"\na scrape beside 3 idle connections took {time.monotonic() - began:.3f}s")

        with socket.create_connection(("127.0.0.1", metrics_port), timeout=5) as bad:
            # One byte over the longest request line, and nothing more: the server reads all
            # of it, so its close is clean (unread bytes would turn it into a reset).
            bad.sendall(b"GET /" + b"x" * (65_537 - 5))
            answer = b""
            while chunk := bad.recv(65536):
                answer += chunk
        head, _, body = answer.decode().partition("\r\n\r\n")
        assert head.startswith("HTTP/1.0 414"), head
        assert "Content-Type: application/problem+json" in head
        assert json.loads(body)["status"] == 414

        # As many slow clients as the exporter serves at once, each sending a byte every half
        # second: each is closed when its time is up (not only when it falls silent), and
        # scrapes are answered again.
        for connection in idle:
            connection.close()
        slow = [
            socket.create_connection(("127.0.0.1", metrics_port)) for _ in range(MAX_CONNECTIONS)
        ]
        began = time.monotonic()
        served = None
        while served is None and time.monotonic() - began < CLIENT_TIMEOUT + 10:
            for connection in slow:
                with contextlib.suppress(OSError):
                    connection.send(b"G")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=1).status_code == 200:
                    served = time.monotonic() - began
            time.sleep(0.5)
        print(f"{MAX_CONNECTIONS} byte-a-second clients: a scrape answered after {served}s")
        assert served is not None, "slow clients held the exporter"
        for connection in slow:
            connection.close()
    finally:
        for connection in idle:
            connection.close()
        parent.communicate(b"")
