"""Example tasks. `demo.add` and `demo.sleep` are used by the tests; `demo.flaky` shows retries
with backoff; `demo.heartbeat` is sent by beat and records when it last ran."""

from __future__ import annotations

import json
import time

from celery import Celery, Task

from courier.catalog import Param, PublicError, public
from courier.celery_app import app, backend_key
from courier.logs import get_logger

HEARTBEAT_KEY = backend_key("demo-heartbeat")
MAX_SLEEP_SECONDS = 60

log = get_logger("courier.demo")


class TransientError(PublicError):
    """A failure worth retrying, like a timeout talking to another service."""


@public(
    "Add two numbers.",
    Param("a", "number", "first addend", minimum=-1e15, maximum=1e15),
    Param("b", "number", "second addend", minimum=-1e15, maximum=1e15),
)
@app.task(name="demo.add")
def add(a: float, b: float) -> float:
    total = a + b
    log.info("added", a=a, b=b, total=total)
    return total


@public(
    "Sleep, then return the seconds slept.",
    Param("seconds", "number", "how long to sleep", minimum=0, maximum=MAX_SLEEP_SECONDS),
)
@app.task(name="demo.sleep")
def sleep(seconds: float) -> float:
    log.info("sleeping", seconds=seconds)
    time.sleep(seconds)
    log.info("slept", seconds=seconds)
    return seconds


@public(
    "Fail with a transient error `failures` times, then succeed; retried with backoff.",
    Param("failures", "integer", "how many attempts fail first", minimum=0, maximum=3),
)
@app.task(
    name="demo.flaky",
    bind=True,
    autoretry_for=(TransientError,),
    retry_backoff=1,
    retry_backoff_max=8,
    retry_jitter=False,
    max_retries=3,
)
def flaky(self: Task, failures: int) -> dict[str, int]:
    attempt = self.request.retries + 1
    if attempt <= failures:
        log.warning("transient failure", attempt=attempt)
        raise TransientError(f"attempt {attempt} failed")
    log.info("succeeded", attempt=attempt)
    return {"attempts": attempt}


@app.task(name="demo.heartbeat", ignore_result=True)
def heartbeat() -> None:
    now = time.time()
    app.backend.set(HEARTBEAT_KEY, json.dumps({"last_run": now}))
    log.info("heartbeat", at=now)


def last_heartbeat(celery: Celery) -> float | None:
    raw = celery.backend.get(HEARTBEAT_KEY)
    return float(json.loads(raw)["last_run"]) if raw else None
