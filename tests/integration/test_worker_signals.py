"""A worker stopped in the middle of a job: SIGTERM lets the job finish before the worker exits;
SIGKILL of the worker's whole process group loses nothing, the job is redelivered to a new worker
after the visibility timeout.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.integration.processes import Courier

VISIBILITY_TIMEOUT = 5


@pytest.mark.timeout(90)
def test_sigterm_lets_the_running_job_finish(courier: Courier, redis_url: str) -> None:
    worker = courier.start("worker", redis_url)
    api = courier.start("api", redis_url)
    api.wait_http()
    worker.wait_worker_ready()
    client = api.api()
    job_id = client.submit_ok("demo.sleep", {"seconds": 3})
    client.wait_for_job(job_id, states=("STARTED",))

    signalled_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    code = worker.wait(timeout=15)
    exited_after = time.monotonic() - signalled_at

    print(f"\nSIGTERM during demo.sleep(3): worker exited {code} after {exited_after:.2f}s")
    assert code == 0, worker.log_tail()
    body = client.wait_for_job(job_id, timeout=5)
    assert body["result"] == 3
    assert worker.events("slept", task_id=job_id), "the worker did not finish the job itself"
    assert exited_after >= 1.0, "the worker exited without waiting for the job"


@pytest.mark.timeout(120)
def test_job_of_a_killed_worker_is_redelivered(courier: Courier, redis_url: str) -> None:
    # No job may outlive its visibility timeout (courier refuses the combination).
    env = {
        "VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "TASK_TIME_LIMIT": str(VISIBILITY_TIMEOUT - 1),
    }
    first = courier.start("worker", redis_url, name="worker-killed", **env)
    api = courier.start("api", redis_url, **env)
    api.wait_http()
    first.wait_worker_ready()
    client = api.api()
    job_id = client.submit_ok("demo.sleep", {"seconds": 2})
    client.wait_for_job(job_id, states=("STARTED",))

    killed_at = time.monotonic()
    first.kill_group()
    assert first.process.returncode == -signal.SIGKILL
    assert client.job(job_id)["state"] == "STARTED"
    second = courier.start("worker", redis_url, name="worker-fresh", **env)
    body = client.wait_for_job(job_id, timeout=30)
    redelivered_after = time.monotonic() - killed_at

    print(
        f"\nSIGKILL mid-job: SUCCESS on a fresh worker {redelivered_after:.2f}s after the kill "
        f"(visibility timeout {VISIBILITY_TIMEOUT}s)"
    )
    assert body["result"] == 2
    assert not first.events("slept", task_id=job_id), "the killed worker finished the job"
    assert second.events("slept", task_id=job_id), "the fresh worker did not run the job"
