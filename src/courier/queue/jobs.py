"""Submitting jobs and reading them back, with a record of every submitted id.

Celery reports PENDING for any id it has never seen, so the API keeps its own record of the ids
it queued (in the result backend, expiring with the results) and answers 404 for the rest.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery

from courier.names import REQUEST_ID_HEADER, backend_key
from courier.queue.dependencies import BROKER, RESULT_BACKEND, Dependencies
from courier.tasks import PublicError


@dataclass(frozen=True)
class JobStatus:
    id: str
    task: str
    state: str
    result: Any = None
    error: dict[str, str] | None = None

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

    def submit(self, task: str, args: dict[str, Any], request_id: str) -> str:
        """Record the job, then queue it; `Unavailable` when either call fails. (A record whose
        message could not be queued is never read: nobody got its id. It expires.)"""
        job_id = str(uuid.uuid4())
        record = json.dumps({"task": task, "submitted_at": time.time()})
        backend = self._celery.backend
        self._dependencies.call(RESULT_BACKEND, lambda: backend.set(_record_key(job_id), record))
        self._dependencies.call(
            BROKER,
            lambda: self._celery.send_task(
                task,
                kwargs=args,
                task_id=job_id,
                headers={REQUEST_ID_HEADER: request_id},
                retry=False,
            ),
        )
        return job_id

    def status(self, job_id: str) -> JobStatus | None:
        def read() -> tuple[Any, Any]:
            raw = self._celery.backend.get(_record_key(job_id))
            if raw is None:
                return None, None
            # One read of state and result together: never a state paired with another's result.
            return json.loads(raw), self._celery.backend.get_task_meta(job_id)

        record, meta = self._dependencies.call(RESULT_BACKEND, read)
        if record is None:
            return None
        state, value = meta["status"], meta.get("result")
        if isinstance(value, BaseException):
            return JobStatus(job_id, record["task"], state, error=describe_error(value))
        return JobStatus(job_id, record["task"], state, result=value)


def describe_error(error: BaseException) -> dict[str, str]:
    """What a client may see of a failed job: its exception type, and the message only of a
    `PublicError` (others may carry hosts, queries or credentials)."""
    described = {"type": type(error).__name__}
    if isinstance(error, PublicError):
        described["message"] = str(error)
    return described


def _record_key(job_id: str) -> bytes:
    return backend_key(f"job-{job_id}")
