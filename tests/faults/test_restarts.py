"""The embedded default (`MODE=all`) killed at any moment and started again on the same data
directory: it comes up (no stale pidfile, lock or liveness file trusted), and every accepted job
ends SUCCESS, the ones cut off by the kill run again (at least once, as with Redis)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import docker
import pytest
from testcontainers.core.container import DockerContainer

from tests.faults.helpers import count_by_task
from tests.stack import ApiClient, Stack, wait_until

ROUNDS = 5
JOBS = 30
SLEEP = 0.5
NONROOT = 65532


def start_all(system: Stack, data: Path) -> tuple[DockerContainer, ApiClient]:
    container = system.courier(
        None,
        {"DATA_DIR": "/data", "WORKER_CONCURRENCY": "2", "WEB_CONCURRENCY": "1"},
        name=f"all-{uuid.uuid4().hex[:8]}",
        mounts=[docker.types.Mount(target="/data", source=str(data), type="bind")],
    )
    client = system.api_client(container)
    client.wait_ready(60)
    return container, client


def succeeded(client: ApiClient, jobs: list[str]) -> int:
    return sum(client.job(job)["state"] == "SUCCESS" for job in jobs)


def some_done_and_some_running(client: ApiClient, jobs: list[str]) -> bool:
    states = [client.job(job)["state"] for job in jobs]
    return states.count("SUCCESS") >= 4 and "STARTED" in states


def kill_and_restart(system: Stack, data: Path, number: int) -> int:
    """One round: jobs queued, the container killed mid-way, a new one started on the same
    data; the number of jobs that ran twice (cut off by the kill)."""
    first, client = start_all(system, data)
    jobs = [client.submit("demo.sleep", {"seconds": SLEEP}) for _ in range(JOBS)]
    wait_until(
        lambda: some_done_and_some_running(client, jobs),
        60,
        interval=0.05,
        what="a few jobs done and one running",
    )
    first.get_wrapped_container().kill(signal="SIGKILL")
    second, client = start_all(system, data)
    waited = wait_until(
        lambda: succeeded(client, jobs) == JOBS,
        90,
        what=f"round {number}: every job SUCCESS after the restart",
    )
    box = second.get_wrapped_container()
    box.reload()
    assert box.status == "running", f"round {number}: the restarted container stopped"
    started = count_by_task([first, second], "sleeping")
    assert all(started[job] >= 1 for job in jobs)
    twice = sum(1 for job in jobs if started[job] > 1)
    print(
        f"\n[embedded restart {number}/{ROUNDS}] {JOBS} jobs, SIGKILL mid-way, restarted on the "
        f"same DATA_DIR: all SUCCESS {waited:.1f}s later, {twice} run again (cut off by the kill)"
    )
    box.kill(signal="SIGKILL")
    return twice


@pytest.mark.timeout(600)
def test_a_killed_embedded_container_restarts_and_runs_every_job(
    courier_image: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, NONROOT, NONROOT)
    with Stack(courier_image) as system:
        rerun = [kill_and_restart(system, data, number) for number in range(1, ROUNDS + 1)]
    print(f"jobs run again per round: {rerun}")
    assert sum(rerun) > 0, "no kill cut a job off: the test proved nothing"
