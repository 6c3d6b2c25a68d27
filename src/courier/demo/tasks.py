"""Example tasks. `demo.add` and `demo.sleep` are used by the tests; `demo.flaky` shows retries
with backoff, `demo.fail` a failure the client may read; `demo.heartbeat` is sent by beat and
records when it last ran."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from celery import Celery, Task

from courier.logs import get_logger
from courier.names import backend_key
from courier.tasks import Param, PublicError, task

HEARTBEAT_KEY = backend_key("demo-heartbeat")
MAX_SLEEP_SECONDS = 60

log = get_logger("courier.demo")


class TransientError(PublicError):
    """A failure worth retrying, like a timeout talking to another service."""


@task("demo.add", public=True)
def add(
    a: Annotated[float, Param("first addend", minimum=-1e15, maximum=1e15)],
    b: Annotated[float, Param("second addend", minimum=-1e15, maximum=1e15)],
) -> float:
    """Add two numbers."""
    total = a + b
    log.info("added", a=a, b=b, total=total)
    return total


@task("demo.sleep", public=True)
def sleep(
    seconds: Annotated[float, Param("how long to sleep", minimum=0, maximum=MAX_SLEEP_SECONDS)],
) -> float:
    """Sleep, then return the seconds slept."""
    log.info("sleeping", seconds=seconds)
    time.sleep(seconds)
    log.info("slept", seconds=seconds)
    return seconds


@task(
    "demo.flaky",
    public=True,
    bind=True,
    autoretry_for=(TransientError,),
    retry_backoff=1,
    retry_backoff_max=8,
    retry_jitter=False,
    max_retries=3,
)
def flaky(
    self: Task,
    failures: Annotated[int, Param("how many attempts fail first", minimum=0, maximum=3)],
) -> dict[str, int]:
    """Fail with a transient error `failures` times, then succeed; retried with backoff."""
    attempt: int = self.request.retries + 1
    if attempt <= failures:
        log.warning("transient failure", attempt=attempt)
        raise TransientError(f"attempt {attempt} failed")
    log.info("succeeded", attempt=attempt)
    return {"attempts": attempt}


@task("demo.fail", public=True)
def fail(message: Annotated[str, Param("what the error says", max_length=200)]) -> None:
    """Fail with a public error: how a job's error reaches the client."""
    raise PublicError(message)


@task("demo.heartbeat", bind=True, ignore_result=True)
def heartbeat(self: Task) -> None:
    """Record when beat's periodic job last ran."""
    now = time.time()
    self.app.backend.set(HEARTBEAT_KEY, json.dumps({"last_run": now}))
    log.info("heartbeat", at=now)


def last_heartbeat(celery: Celery) -> float | None:
    raw: Any = celery.backend.get(HEARTBEAT_KEY)
    return float(json.loads(raw)["last_run"]) if raw else None
