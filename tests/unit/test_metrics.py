"""Metrics: the names, labels and types dashboards rely on; the API's counts; and the values of
two gunicorn workers summed by the exporter of a real `python -m courier` API."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests
from falcon import testing
from prometheus_client import generate_latest

from courier.metrics import Metrics
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
        writers = {
            path.name.rsplit("_", 1)[1] for path in (data_dir / "metrics").glob("counter_*.db")
        }
        print(
            f"\n40 requests, the web workers killed in between; the exporter counts "
            f"{counted:.0f}, from {len(writers)} processes' files"
        )
        assert counted >= 40  # the waits for a first answer count too
        assert len(writers) >= 2, writers
        assert counted <= 40 + 5
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
