"""The compose `monitoring` profile, as an operator starts it: Prometheus scrapes the API, every
worker replica and beat through compose's DNS, its rules load, and what it reads adds up to what
was done: jobs submitted, failed and retried, a queue that backs up and drains, a job redelivered
after its worker process was killed. Flower comes up beside them."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from courier.testing import CourierClient
from tests.conftest import free_port
from tests.e2e.compose import ComposeProject
from tests.stack import wait_until

WORKERS = 2
pytestmark = pytest.mark.timeout(600)


class Monitoring:
    def __init__(self, project: ComposeProject, api: CourierClient, prometheus: str) -> None:
        self.project = project
        self.api = api
        self.prometheus = prometheus

    def query(self, expr: str) -> float:
        """The value of a PromQL expression (0 when it has no result)."""
        response = requests.get(
            f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10
        )
        result = response.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    def reaches(self, expr: str, value: float, timeout: float = 60) -> float:
        return wait_until(
            lambda: self.query(expr) == value, timeout, interval=1, what=f"{expr} == {value}"
        )


@pytest.fixture(scope="module")
def monitoring(
    courier_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitoring]:
    import os

    token = secrets.token_urlsafe(32)
    api_port, prometheus_port, flower_port = free_port(), free_port(), free_port()
    project = ComposeProject(
        tmp_path_factory.mktemp("monitoring"),
        variables={
            "COURIER_IMAGE": courier_image,
            "API_PORT": str(api_port),
            "PROMETHEUS_PORT": str(prometheus_port),
            "FLOWER_PORT": str(flower_port),
            **{
                name: os.environ[name]
                for name in ("REDIS_IMAGE", "PROMETHEUS_IMAGE", "FLOWER_IMAGE")
                if os.environ.get(name)
            },
        },
        dotenv={"API_TOKENS": token},
    )
    try:
        started = time.monotonic()
        project.up(WORKERS, "monitoring")
        print(
            f"\n[monitoring] compose up --profile monitoring in {time.monotonic() - started:.1f}s"
        )
        yield Monitoring(
            project,
            CourierClient(f"http://127.0.0.1:{api_port}", token),
            f"http://127.0.0.1:{prometheus_port}",
        )
    except BaseException:
        print(project.run("ps", "--all", check=False).stdout)
        print(project.logs()[-8000:])
        raise
    finally:
        project.down()
        assert not project.leftovers(), "compose down left the monitoring profile running"


def test_prometheus_scrapes_every_role_and_loads_the_rules(monitoring: Monitoring) -> None:
    def targets() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = requests.get(
            f"{monitoring.prometheus}/api/v1/targets", timeout=10
        ).json()["data"]["activeTargets"]
        return found

    wait_until(
        lambda: sum(t["health"] == "up" for t in targets()) == 2 + WORKERS,
        90,
        interval=1,
        what="api, every worker and beat up",
    )
    up = sorted((t["labels"]["role"], t["health"]) for t in targets())
    print("\n[monitoring] Prometheus targets:")
    for target in sorted(targets(), key=lambda t: t["labels"]["role"]):
        print(f"  {target['labels']['role']:<7} {target['scrapeUrl']:<40} {target['health']}")
    assert up == [("api", "up"), ("beat", "up")] + [("worker", "up")] * WORKERS
    groups = requests.get(f"{monitoring.prometheus}/api/v1/rules", timeout=10).json()["data"][
        "groups"
    ]
    rules = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    print(f"[monitoring] rules: {sorted(rules)}")
    assert "CourierQueueBackingUp" in rules
    assert "courier:queue_depth:max" in rules
    assert all(health in ("ok", "unknown") for health in rules.values()), rules
    assert monitoring.query("sum(courier_build_info)") >= 2 + WORKERS
    assert monitoring.query("max(courier_beat_lock_held)") == 1


def test_the_counts_add_up_and_the_queue_backs_up_and_drains(monitoring: Monitoring) -> None:
    api, project = monitoring.api, monitoring.project

    def total(task: str, state: str) -> str:
        return f'sum(courier_tasks_total{{task="{task}",state="{state}"}})'

    before = {
        key: monitoring.query(total(*key))
        for key in [("demo.add", "succeeded"), ("demo.fail", "failed"), ("demo.flaky", "retried")]
    }
    submitted_before = monitoring.query('sum(courier_jobs_submitted_total{task="demo.add"})')
    # The workers stopped: the jobs wait in the queue.
    project.run("stop", "worker", timeout=120)
    adds = [api.submit("demo.add", {"a": n, "b": 1}) for n in range(10)]
    fails = [api.submit("demo.fail", {"message": "out of stock"}) for _ in range(3)]
    flakies = [api.submit("demo.flaky", {"failures": 1}) for _ in range(2)]
    rose = monitoring.reaches('max(courier_queue_depth{queue="celery"})', 15, timeout=60)
    assert monitoring.query('max(courier_queue_oldest_age_seconds{queue="celery"})') > 0
    project.run("start", "worker", timeout=120)
    for job in adds + flakies:
        api.wait(job, timeout=90)
    for job in fails:
        assert api.wait(job, timeout=90)["state"] == "FAILURE"
    drained = monitoring.reaches('max(courier_queue_depth{queue="celery"})', 0, timeout=60)
    monitoring.reaches(total("demo.add", "succeeded"), before[("demo.add", "succeeded")] + 10)
    monitoring.reaches(total("demo.fail", "failed"), before[("demo.fail", "failed")] + 3)
    monitoring.reaches(total("demo.flaky", "retried"), before[("demo.flaky", "retried")] + 2)
    monitoring.reaches('sum(courier_jobs_submitted_total{task="demo.add"})', submitted_before + 10)
    print(
        f"\n[monitoring] queue depth 15 seen {rose:.1f}s after the submissions, 0 again "
        f"{drained:.1f}s after the workers came back; Prometheus: 10 succeeded, 3 failed, "
        "2 retried, 10 submitted, as done"
    )


def in_worker(project: ComposeProject, index: int, *command: str) -> str:
    """Run a command in worker replica `index` (1-based); its standard output."""
    return project.exec("--index", str(index), "worker", *command).stdout


def test_a_job_whose_worker_process_is_killed_is_counted_as_redelivered(
    monitoring: Monitoring,
) -> None:
    api, project = monitoring.api, monitoring.project
    redelivered = 'sum(courier_tasks_redelivered_total{task="demo.sleep"})'
    before = monitoring.query(redelivered)
    jobs = [api.submit("demo.sleep", {"seconds": 3}) for _ in range(2 * WORKERS)]
    wait_until(
        lambda: any(api.job(j)["state"] == "STARTED" for j in jobs), 30, what="a job running"
    )
    celery = ["/opt/venv/bin/python", "-m", "celery", "--app", "courier.queue.main"]
    active = json.loads(
        in_worker(project, 1, *celery, "inspect", "active", "--json").splitlines()[-1]
    )
    busy = {
        node: [job["worker_pid"] for job in running] for node, running in active.items() if running
    }
    assert busy, active
    hosts = {
        in_worker(
            project,
            index,
            "/opt/venv/bin/python",
            "-c",
            "import socket; print(socket.gethostname())",
        ).strip(): index
        for index in range(1, WORKERS + 1)
    }
    node, pids = next(iter(busy.items()))
    in_worker(
        project,
        hosts[node.split("@", 1)[1]],
        "/opt/venv/bin/python",
        "-c",
        f"import os, signal\nfor pid in {pids!r}: os.kill(pid, signal.SIGKILL)",
    )
    for job in jobs:
        assert api.wait(job, timeout=90)["state"] == "SUCCESS"
    counted = wait_until(
        lambda: monitoring.query(redelivered) >= before + len(pids),
        60,
        interval=1,
        what="the redeliveries",
    )
    total = monitoring.query(redelivered) - before
    print(
        f"\n[monitoring] killed {len(pids)} pool processes running jobs on {node}: {total:.0f} "
        f"jobs redelivered, counted {counted:.1f}s after they were done"
    )
    assert total == len(pids)


def test_flower_switches_the_workers_task_events_on(monitoring: Monitoring) -> None:
    """Task events are off by default (TASK_EVENTS=false: they cost throughput); the profile's
    Flower switches them on in every worker by remote control as it starts."""
    project = monitoring.project

    def switched_on() -> int:
        lines = project.json_logs("worker")
        return sum("enabled by remote" in str(line.get("event")) for line in lines)

    wait_until(lambda: switched_on() >= WORKERS, 60, interval=1, what="events on in each worker")
    assert project.run("ps", "--status", "running", "--services").stdout.split().count("flower")
    print(f"\n[monitoring] Flower switched task events on in {switched_on()} worker(s)")
