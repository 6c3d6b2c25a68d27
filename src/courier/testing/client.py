"""A client of courier's HTTP API for tests: submit a job, wait for it, get its result.

Standard library only (`urllib`), so the `testing` extra needs no HTTP package of its own.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

TERMINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


class CourierApiError(RuntimeError):
    """The API answered a request with an error status; `body` is its problem document."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        detail = body.get("detail", "") if isinstance(body, dict) else str(body)[:300]
        errors = body.get("errors") if isinstance(body, dict) else None
        super().__init__(
            f"{method} {path} answered {status}: {detail}" + (f" {errors}" if errors else "")
        )


class JobFailedError(RuntimeError):
    """A job ended FAILURE or REVOKED; `job` is what the API reports about it."""

    def __init__(self, job: Mapping[str, Any]) -> None:
        self.job = dict(job)
        error = job.get("error") or {}
        reason = ": ".join(str(part) for part in (error.get("type"), error.get("message")) if part)
        super().__init__(
            f"job {job.get('id')} ({job.get('task')}) ended {job.get('state')}"
            + (f": {reason}" if reason else "")
        )


class CourierApi:
    """The calls of courier's API a test makes (submit, wait, run...), sent by `client()`: a
    `CourierClient` is its own client, a `CourierStack` uses its API container's."""

    def client(self) -> CourierClient:
        raise NotImplementedError

    def get(self, path: str) -> Any:
        """GET `path`: its JSON body; `CourierApiError` for an error status."""
        status, body = self.client().request("GET", path)
        if status >= 400:
            raise CourierApiError("GET", path, status, body)
        return body

    def submit(
        self, task: str, args: Mapping[str, Any] | None = None, *, request_id: str | None = None
    ) -> str:
        """Queue `task` with `args`; the job's id. A refusal (422, 503...) raises."""
        headers = {"X-Request-ID": request_id} if request_id else {}
        status, body = self.client().request(
            "POST", "/v1/jobs", {"task": task, "args": dict(args or {})}, headers
        )
        if status != 202:
            raise CourierApiError("POST", "/v1/jobs", status, body)
        return str(body["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        """The job as the API reports it: id, task, state, and result or error."""
        body: dict[str, Any] = self.get(f"/v1/jobs/{job_id}")
        return body

    def wait(self, job_id: str, timeout: float = 60.0, interval: float = 0.2) -> dict[str, Any]:
        """Poll the job until it ends (SUCCESS, FAILURE or REVOKED); `TimeoutError` after
        `timeout` seconds, naming the last state seen."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in TERMINAL_STATES:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"job {job_id} ({job.get('task')}) not finished within {timeout}s: "
                    f"still {job['state']}"
                )
            time.sleep(interval)

    def run(
        self,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float = 60.0,
        request_id: str | None = None,
    ) -> Any:
        """Submit, wait, and return the job's result; `JobFailedError` (holding the job's
        error) unless it succeeded."""
        job = self.wait(self.submit(task, args, request_id=request_id), timeout)
        if job["state"] != "SUCCESS":
            raise JobFailedError(job)
        return job.get("result")


class CourierClient(CourierApi):
    """Bearer-token requests to one courier API, each bounded by `timeout` seconds."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def client(self) -> CourierClient:
        return self

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send one request; the status and the decoded JSON body (None when empty)."""
        sent = {"Accept": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        request = urllib.request.Request(  # noqa: S310 - the URL is the API's own http:// URL
            self.base_url + path, data=data, headers=sent, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status, raw = int(response.status), response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")
