"""Submitting jobs and reading them back, with a record of every submitted id.

Celery reports PENDING for any id it has never seen, so the API keeps its own record of the ids
it queued (in the result backend, expiring with the results) and answers 404 for the rest.

Both can wait for the job to finish (`Prefer: wait=N`): with a Redis result backend, through the
result channel Celery publishes each state on (subscribed before the job is queued, so nothing
is missed), never by polling.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.backends.redis import RedisBackend
from celery.states import READY_STATES

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

    @property
    def can_wait(self) -> bool:
        """Waiting needs the result backend's publish/subscribe: Redis."""
        return isinstance(self._celery.backend, RedisBackend)

    def submit(
        self, task: str, args: dict[str, Any], request_id: str, wait: float = 0.0
    ) -> JobStatus:
        """Record the job, then queue it; wait up to `wait` seconds for it to finish. Its state
        (PENDING unless it finished); `Unavailable` when a call fails. (A record whose message
        could not be queued is never read: nobody got its id. It expires.)"""
        job_id = str(uuid.uuid4())
        record = json.dumps({"task": task, "submitted_at": time.time()})
        backend = self._celery.backend
        self._dependencies.call(RESULT_BACKEND, lambda: backend.set(_record_key(job_id), record))
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
            meta = watch.finished()
        if meta is None:
            return JobStatus(job_id, task, "PENDING")
        return _status(job_id, task, meta)

    def status(self, job_id: str, wait: float = 0.0) -> JobStatus | None:
        """The job's state, or None for an id never submitted; when it has not finished, wait
        up to `wait` seconds for it to."""
        raw = self._dependencies.call(
            RESULT_BACKEND, lambda: self._celery.backend.get(_record_key(job_id))
        )
        if raw is None:
            return None
        task = json.loads(raw)["task"]
        with self._watch(job_id, wait) as watch:
            # One read of state and result together: never a state paired with another's result.
            meta = self._dependencies.call(
                RESULT_BACKEND, lambda: self._celery.backend.get_task_meta(job_id)
            )
            if meta["status"] not in READY_STATES:
                meta = watch.finished() or meta
        return _status(job_id, task, meta)

    @contextlib.contextmanager
    def _watch(self, job_id: str, wait: float) -> Iterator[_Watch]:
        if wait <= 0 or not self.can_wait:
            yield _Watch(None, job_id, 0.0)
            return
        backend = self._celery.backend
        pubsub = self._dependencies.call(
            RESULT_BACKEND,
            lambda: _subscribed(backend.client.pubsub(), backend.get_key_for_task(job_id)),
        )
        try:
            yield _Watch(pubsub, job_id, time.monotonic() + wait, backend)
        finally:
            with contextlib.suppress(Exception):
                pubsub.close()


def _subscribed(pubsub: Any, channel: bytes) -> Any:
    pubsub.subscribe(channel)  # sent now; its confirmation is read while waiting
    return pubsub


class _Watch:
    """A subscription to one job's result channel, until a deadline."""

    def __init__(self, pubsub: Any, job_id: str, deadline: float, backend: Any = None) -> None:
        self._pubsub = pubsub
        self._job_id = job_id
        self._deadline = deadline
        self._backend = backend

    def finished(self) -> dict[str, Any] | None:
        """The job's final meta once it is published, or None at the deadline. Right after the
        subscription is confirmed the stored state is read once: a job that finished before
        that published its result to no one."""
        if self._pubsub is None:
            return None
        try:
            while (left := self._deadline - time.monotonic()) > 0:
                message = self._pubsub.get_message(timeout=left)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    meta = self._backend.get_task_meta(self._job_id)
                elif message["type"] == "message":
                    meta = self._backend.decode_result(message["data"])
                else:
                    continue
                if meta["status"] in READY_STATES:
                    return dict(meta)
        except Exception:  # noqa: S110 - a wait that fails is a wait that timed out
            pass
        return None


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
