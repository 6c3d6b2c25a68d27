"""Submitting jobs and reading them back, with a record of every submitted id.

Celery reports PENDING for any id it has never seen, so the API keeps its own record of the ids
it queued (in the result backend, expiring with the results) and answers 404 for the rest.

Both can wait for the job to finish (`Prefer: wait=N`): with a Redis result backend, through the
result channel Celery publishes each state on (subscribed before the job is queued, so nothing
is missed), never by polling: see `courier.queue.results`.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.states import READY_STATES

from courier.names import REQUEST_ID_HEADER, backend_key
from courier.queue.dependencies import BROKER, RESULT_BACKEND, Dependencies
from courier.queue.redis_backend import RedisBackend, record_and_meta, set_record
from courier.queue.results import ResultChannel
from courier.tasks import PublicError


@dataclass(frozen=True)
class JobStatus:
    id: str
    task: str
    state: str
    result: Any = None
    error: dict[str, str] | None = None

    @property
    def finished(self) -> bool:
        return self.state in READY_STATES

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "task": self.task, "state": self.state}
        if self.error is not None:
            body["error"] = self.error
        elif self.state == "SUCCESS":
            body["result"] = self.result
        return body


def parse_job_id(raw: str) -> str | None:
    """The canonical form of a job id, or None when `raw` is not one."""
    try:
        return str(uuid.UUID(raw)) if len(raw) == 36 else None
    except ValueError:
        return None


class Jobs:
    """Submitting and reading jobs; every call bounded (see `courier.queue.dependencies`)."""

    def __init__(self, celery: Celery, dependencies: Dependencies) -> None:
        self._celery = celery
        self._dependencies = dependencies
        # One subscriber per process, shared by every waiting request (see ResultChannel).
        backend = celery.backend
        self._results = ResultChannel(backend) if isinstance(backend, RedisBackend) else None

    @property
    def can_wait(self) -> bool:
        """Waiting needs the result backend's publish/subscribe: Redis."""
        return self._results is not None

    def submit(
        self, task: str, args: dict[str, Any], request_id: str, wait: float = 0.0
    ) -> JobStatus:
        """Record the job, then queue it; wait up to `wait` seconds for it to finish. Its state
        (PENDING unless it finished); `Unavailable` when a call fails. (A record whose message
        could not be queued is never read: nobody got its id. It expires.)"""
        job_id = str(uuid.uuid4())
        record = json.dumps({"task": task, "submitted_at": time.time()})
        self._dependencies.call(RESULT_BACKEND, lambda: self._store_record(job_id, record))
        with self._watch(job_id, wait) as watch:
            self._dependencies.call(
                BROKER,
                lambda: self._celery.send_task(
                    task,
                    kwargs=args,
                    task_id=job_id,
                    headers={REQUEST_ID_HEADER: request_id},
                    retry=False,
                    # What Flower and events show of the arguments; Celery's own safe repr of
                    # them costs more than the rest of the message.
                    argsrepr="()",
                    kwargsrepr=json.dumps(args)[:1024],
                ),
            )
            meta = watch()
        if meta is None:
            return JobStatus(job_id, task, "PENDING")
        return _status(job_id, task, meta)

    def status(self, job_id: str, wait: float = 0.0) -> JobStatus | None:
        """The job's state, or None for an id never submitted; when it has not finished, wait
        up to `wait` seconds for it to."""
        deadline = time.monotonic() + wait
        # One read of state and result together: never a state paired with another's result.
        raw, meta = self._dependencies.call(RESULT_BACKEND, lambda: self._read(job_id))
        if raw is None:
            return None
        if meta["status"] not in READY_STATES:
            # Subscribed only now, for a job still running (the watch reads the stored state
            # again once subscribed: a job that finished in between is seen).
            with self._watch(job_id, deadline - time.monotonic()) as watch:
                meta = watch() or meta
        return _status(job_id, _task_of(raw), meta)

    def _store_record(self, job_id: str, record: str) -> None:
        set_record(self._celery.backend, _record_key(job_id), record)

    def _read(self, job_id: str) -> tuple[Any, dict[str, Any]]:
        """The job's record (None for an id never submitted) and its meta."""
        return record_and_meta(self._celery.backend, _record_key(job_id), job_id)

    @contextlib.contextmanager
    def _watch(self, job_id: str, wait: float) -> Iterator[Callable[[], dict[str, Any] | None]]:
        """Subscribed to the job's results for the block (when it may wait at all); the yielded
        function waits until `wait` seconds from now and returns the job's final meta, or
        None."""
        if wait <= 0 or self._results is None:
            yield lambda: None
            return
        with self._results.watching(job_id, time.monotonic() + wait) as finished:
            yield lambda: finished(lambda: self._celery.backend.get_task_meta(job_id))


def _task_of(record: Any) -> str:
    task: str = json.loads(record)["task"]
    return task


def _status(job_id: str, task: str, meta: dict[str, Any]) -> JobStatus:
    state, value = meta["status"], meta.get("result")
    if isinstance(value, BaseException):
        return JobStatus(job_id, task, state, error=describe_error(value))
    return JobStatus(job_id, task, state, result=value)


def describe_error(error: BaseException) -> dict[str, str]:
    """What a client may see of a failed job: its exception type, and the message only of a
    `PublicError` (others may carry hosts, queries or credentials)."""
    described = {"type": type(error).__name__}
    if isinstance(error, PublicError):
        described["message"] = str(error)
    return described


def _record_key(job_id: str) -> bytes:
    return backend_key(f"job-{job_id}")
