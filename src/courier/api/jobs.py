"""`/v1/tasks` and `/v1/jobs`: the catalog of public tasks, submitting a job, reading it back."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import falcon

from courier.api.errors import Problem
from courier.api.openapi import Operations, operation
from courier.logs import get_logger
from courier.metrics import Metrics
from courier.queue.dependencies import Unavailable
from courier.queue.jobs import Jobs, parse_job_id
from courier.tasks import TaskDeclaration

log = get_logger("courier.api")

JOB_STATES = ["PENDING", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED"]


JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "task", "state"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "task": {"type": "string"},
        # Celery's states, or a task's own (`update_state(state="PROGRESS")`).
        "state": {"type": "string", "examples": JOB_STATES},
        "result": {},
        "error": {
            "type": "object",
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
PREFER_PARAMETER: dict[str, Any] = {
    "name": "Prefer",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "`wait=N` (RFC 7240): wait up to N seconds (at most PREFER_WAIT_MAX) for the "
    "job to finish; answered with `Preference-Applied` when waited (all but one of a process's "
    "threads may wait at once; past that, and with a result backend other than Redis, the "
    "answer comes at once).",
}


def read_json_body(req: falcon.Request, limit: int) -> Any:
    """The request body as JSON: 415 unless application/json, 413 past `limit`, 400 if bad."""
    media_type = (req.content_type or "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise falcon.HTTPUnsupportedMediaType(
            title="Unsupported Media Type", description="Send the body as application/json."
        )
    too_large = falcon.HTTPContentTooLarge(
        title="Content Too Large", description=f"The body must be at most {limit} bytes."
    )
    if req.content_length is not None and req.content_length > limit:
        raise too_large
    # Without a Content-Length (a chunked body), `bounded_stream` would read nothing: read the
    # server's de-chunked stream instead, still never more than limit + 1 bytes.
    stream = req.bounded_stream if req.content_length is not None else req.stream
    try:
        raw = stream.read(limit + 1)
    except Exception as error:  # the server's own error for bad framing (chunked, say)
        log.warning("request body unreadable", error=type(error).__name__)
        raise falcon.HTTPBadRequest(
            title="Malformed Body",
            description="The body could not be read (malformed chunked encoding?).",
        ) from None
    if len(raw) > limit:
        raise too_large
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise falcon.HTTPBadRequest(
            title="Malformed JSON", description="The body is not valid JSON (or nests too deeply)."
        ) from None


_PREFER_WAIT = re.compile(
    r"(?:^|[,;])\s*wait\s*=\s*([0-9]{1,6}(?:\.[0-9]{1,3})?)\s*(?:$|[,;])", re.I
)


class Waiting:
    """`Prefer: wait=N` (RFC 7240): how long a request may wait for its job, and how many may
    wait at once. A waiting request holds a server thread, so one thread of each process is
    always left for everything else (`/healthz` among them): past that, a request does not
    wait. A preference is a hint: one that cannot be read, or honoured, is ignored."""

    def __init__(self, limit: float, threads: int) -> None:
        self._limit = limit
        self._slots = threading.BoundedSemaphore(threads - 1)  # none with a single thread

    @contextlib.contextmanager
    def preferred(self, req: falcon.Request) -> Iterator[float]:
        """The seconds this request may wait (0: none), for the block."""
        match = _PREFER_WAIT.search(req.get_header("Prefer") or "")
        wait = min(float(match[1]), self._limit) if match else 0.0
        if wait <= 0 or not self._slots.acquire(blocking=False):
            yield 0.0
            return
        try:
            yield wait
        finally:
            self._slots.release()


def _no_such_job() -> falcon.HTTPNotFound:
    return falcon.HTTPNotFound(title="Not Found", description="No job has that id.")


def apply_wait(resp: falcon.Response, waited: float) -> None:
    """`Preference-Applied` on an answer given after waiting (never on an error)."""
    if waited > 0:
        resp.set_header("Preference-Applied", f"wait={waited:g}")


def unprocessable(detail: str, /, **errors: str) -> Problem:
    return Problem(falcon.HTTP_422, "Unprocessable Content", detail, errors=errors)


def unavailable(error: Unavailable) -> Problem:
    return Problem(
        falcon.HTTP_503,
        "Service Unavailable",
        f"The {error.component.replace('_', ' ')} is unavailable ({error.reason}); "
        "try again shortly.",
        headers={"Retry-After": "5"},
    )


class TaskCatalogResource:
    openapi: ClassVar[Operations] = {
        "get": operation(
            "The public tasks and their parameters",
            {"type": "object", "properties": {"tasks": {"type": "array"}}},
        )
    }

    def __init__(self, catalog: Mapping[str, TaskDeclaration]) -> None:
        self._catalog = catalog

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"tasks": [task.as_dict() for task in self._catalog.values()]}


class JobCollectionResource:
    def __init__(
        self,
        jobs: Jobs,
        catalog: Mapping[str, TaskDeclaration],
        metrics: Metrics,
        max_body_bytes: int,
        waiting: Waiting,
    ) -> None:
        self._jobs = jobs
        self._catalog = catalog
        self._submitted = metrics.jobs_submitted
        self._refused = metrics.jobs_refused
        self._max_body_bytes = max_body_bytes
        self._waiting = waiting
        self.openapi = {"post": self._post_operation()}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json_body(req, self._max_body_bytes)
        try:
            task, args = self._parse_submission(body)
        except Problem:
            self._count_refusal(body)
            raise
        try:
            with self._waiting.preferred(req) as wait:
                status = self._jobs.submit(task.name, args, req.context.request_id, wait)
        except Unavailable as error:
            self._refused.labels(task.name, "unavailable").inc()
            raise unavailable(error) from error
        self._submitted.labels(task.name).inc()
        apply_wait(resp, wait)
        resp.location = f"/v1/jobs/{status.id}"
        if status.finished:
            resp.media = status.as_dict()
            return
        resp.status = falcon.HTTP_202
        resp.media = {"id": status.id, "state": "PENDING"}

    def _count_refusal(self, body: Any) -> None:
        """Labelled with the task only when it is a public one: client input is no label."""
        name = body.get("task") if isinstance(body, dict) else None
        if isinstance(name, str) and name in self._catalog:
            self._refused.labels(name, "invalid").inc()
        elif isinstance(name, str):
            self._refused.labels("(unknown)", "unknown_task").inc()
        else:
            self._refused.labels("(unknown)", "invalid").inc()

    def _parse_submission(self, body: Any) -> tuple[TaskDeclaration, dict[str, Any]]:
        if not isinstance(body, dict):
            raise unprocessable("The body must be a JSON object.", body="must be an object")
        unknown = sorted(set(body) - {"task", "args"})
        if unknown:
            raise unprocessable(
                "Only `task` and `args` are accepted.",
                **{name[:64]: "is not accepted" for name in unknown[:10]},
            )
        name, args = body.get("task"), body.get("args", {})
        if not isinstance(name, str):
            raise unprocessable("`task` must name a public task.", task="must be a string")
        task = self._catalog.get(name)
        if task is None:
            raise unprocessable(
                "No public task has that name; see GET /v1/tasks.", task="is not a public task"
            )
        if not isinstance(args, dict):
            raise unprocessable("`args` must be an object.", args="must be an object")
        args = task.normalize(args)
        problems = task.validate(args)
        if problems:
            raise unprocessable(
                f"Invalid arguments for {task.name}.",
                **{key[:64]: value for key, value in list(problems.items())[:20]},
            )
        return task, args

    def _post_operation(self) -> dict[str, Any]:
        submissions = [
            {
                "type": "object",
                # `args` may be left out only when the task has no required parameter.
                "required": ["task", "args"] if task.args_schema()["required"] else ["task"],
                "properties": {"task": {"const": task.name}, "args": task.args_schema()},
                "additionalProperties": False,
            }
            for task in self._catalog.values()
        ]
        queued = operation(
            "Queue a job",
            {
                "type": "object",
                "required": ["id", "state"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "state": {"const": "PENDING"},
                },
            },
            ok_status=202,
            errors=(400, 413, 415, 422, 503),
            # `oneOf` needs at least one alternative: a catalog may be empty while forking.
            request_schema={"oneOf": submissions} if submissions else {"type": "object"},
            parameters=[PREFER_PARAMETER],
        )
        # With `Prefer: wait=N`, a job that finished in time is answered with its result.
        finished = operation("The job finished while the request waited", JOB_SCHEMA)
        queued["responses"] = {**finished["responses"], **queued["responses"]}
        return queued


class JobResource:
    openapi: ClassVar[Operations] = {
        "get": operation(
            "A job's state and its result or error",
            JOB_SCHEMA,
            errors=(404, 503),
            parameters=[
                {
                    "name": "job_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                },
                PREFER_PARAMETER,
            ],
        )
    }

    def __init__(self, jobs: Jobs, waiting: Waiting) -> None:
        self._jobs = jobs
        self._waiting = waiting

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        canonical = parse_job_id(job_id)
        if canonical is None:
            raise _no_such_job()
        try:
            with self._waiting.preferred(req) as wait:
                status = self._jobs.status(canonical, wait)
        except Unavailable as error:
            raise unavailable(error) from error
        if status is None:
            raise _no_such_job()
        apply_wait(resp, wait)
        resp.media = status.as_dict()
