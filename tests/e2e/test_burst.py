"""Three workers share a burst of jobs, and every job runs exactly once.

300 `demo.sleep` jobs of 0.05 s go in through the API from 8 threads; three workers with
WORKER_CONCURRENCY=2 each take them from Redis. The workers' own JSON logs then show which
worker ran which job: every job id exactly once, each worker a share, never more jobs at once
on a worker than its concurrency.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from courier.testing import CourierStack
from courier.testing.containers import json_logs
from tests.e2e.system import events, timestamp, wait_for_lines
from tests.stack import ApiClient, dump_logs

JOBS = 300
SLEEP_SECONDS = 0.05
WORKERS = 3
CONCURRENCY = 2
SUBMITTERS = 8
DEADLINE = 180.0


def peak_concurrency(lines: list[dict[str, Any]]) -> int:
    """Most jobs running at once, from the "sleeping" and "slept" lines (start and end)."""
    changes: list[tuple[float, int]] = []
    for line in lines:
        if line.get("event") == "sleeping":
            changes.append((timestamp(line), 1))
        elif line.get("event") == "slept":
            changes.append((timestamp(line), -1))
    running = peak = 0
    for _, change in sorted(changes, key=lambda item: (item[0], item[1])):
        running += change
        peak = max(peak, running)
    return peak


@pytest.mark.timeout(420)
def test_three_workers_run_a_burst_each_job_exactly_once(courier_image: str) -> None:
    # Each worker is ready (consuming) when the stack is: every one can take a share.
    env = {"WORKER_CONCURRENCY": str(CONCURRENCY), "WEB_CONCURRENCY": "4"}
    with CourierStack(courier_image, workers=WORKERS, env=env) as system:
        try:
            run_burst(system.api_url(), system.token, system.workers)
        except BaseException:
            dump_logs(system, tail=30)
            raise


def run_burst(base_url: str, token: str, workers: list[Any]) -> None:
    local = threading.local()

    def own_client() -> ApiClient:
        # requests.Session is not thread-safe: one client per submitting thread.
        if not hasattr(local, "client"):
            local.client = ApiClient(base_url, token)
        result: ApiClient = local.client
        return result

    def submit(index: int) -> str:
        return own_client().submit(
            "demo.sleep", {"seconds": SLEEP_SECONDS}, request_id=f"e2e-burst-{index:04d}"
        )

    def state(job_id: str) -> dict[str, Any]:
        return own_client().job(job_id)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=SUBMITTERS) as pool:
        job_ids = list(pool.map(submit, range(JOBS)))
        submitted = time.monotonic() - started
        assert len(set(job_ids)) == JOBS

        pending = set(job_ids)
        finished: dict[str, dict[str, Any]] = {}
        while pending and time.monotonic() - started < DEADLINE:
            for body in pool.map(state, sorted(pending)):
                if body["state"] in ("SUCCESS", "FAILURE", "REVOKED"):
                    finished[body["id"]] = body
                    pending.discard(body["id"])
            if pending:
                time.sleep(0.2)
    total = time.monotonic() - started
    assert not pending, f"{len(pending)} of {JOBS} jobs unfinished after {DEADLINE}s"
    states = Counter(body["state"] for body in finished.values())
    assert states == {"SUCCESS": JOBS}, states
    assert {body["result"] for body in finished.values()} == {SLEEP_SECONDS}

    # Which worker ran which job, from each worker's own log.
    def slept_lines() -> list[dict[str, Any]]:
        return [
            {**line, "worker": index}
            for index, worker in enumerate(workers)
            for line in events(json_logs(worker), "slept", task="demo.sleep")
        ]

    slept = wait_for_lines(slept_lines, lambda lines: lines, count=JOBS, what="all slept lines")
    runs = Counter(str(line["task_id"]) for line in slept)
    twice = {job: count for job, count in runs.items() if count > 1}
    assert not twice, f"jobs run more than once: {twice}"
    assert set(runs) == set(job_ids), (
        f"missing {len(set(job_ids) - set(runs))}, unknown {len(set(runs) - set(job_ids))}"
    )
    assert len(slept) == JOBS

    shares: dict[int, int] = defaultdict(int)
    for line in slept:
        shares[line["worker"]] += 1
    distribution = [shares[index] for index in range(WORKERS)]
    assert all(share > 0 for share in distribution), distribution
    assert sum(distribution) == JOBS

    # Each worker's request ids match the jobs it ran: the id travelled with each job.
    request_ids = {job_id: f"e2e-burst-{index:04d}" for index, job_id in enumerate(job_ids)}
    assert all(line["request_id"] == request_ids[line["task_id"]] for line in slept)

    peaks = [peak_concurrency(json_logs(worker)) for worker in workers]
    overall = peak_concurrency([line for worker in workers for line in json_logs(worker)])
    assert all(1 <= peak <= CONCURRENCY for peak in peaks), peaks
    assert 2 <= overall <= WORKERS * CONCURRENCY, overall

    print(
        f"\n[e2e] burst: {JOBS} jobs x {SLEEP_SECONDS}s on {WORKERS} workers x {CONCURRENCY}: "
        f"submitted in {submitted:.2f}s ({JOBS / submitted:.0f}/s), all SUCCESS after "
        f"{total:.2f}s; per worker {distribution}; peak running per worker {peaks}, "
        f"overall {overall}; duplicates 0"
    )
