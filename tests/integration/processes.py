"""Real courier processes on the host for integration tests, and a small client for their API.

Each process is `python -m courier` (the same entrypoint as the image) in its own session, with a
clean environment, its own data directory (also its working directory, so no `.env` is read) and
its output in a log file. The API binds 127.0.0.1 only (`HOST`). Stopping sends SIGTERM to the
process, as `docker stop` does to PID 1, and kills the whole process group after a timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests

from courier.demo.settings import DemoSettings
from courier.settings import Settings, setting_variables
from courier.testing.logs import parse_json_lines
from tests.conftest import failed, free_port

LOOPBACK = "127.0.0.1"
API_TOKEN = "itest-token-0123456789abcdef"
STOP_TIMEOUT = 20.0
TERMINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
# Set on a test (and its parents) that failed: fixtures then print their processes' logs.

# Every variable courier and the demo read.
INHERITED_SETTINGS = setting_variables(Settings, DemoSettings)


def clean_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in INHERITED_SETTINGS and not name.startswith("CELERY_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def matches(
    line: Mapping[str, Any], event: str | Callable[[str], bool], fields: Mapping[str, Any]
) -> bool:
    text = line.get("event")
    if not isinstance(text, str):
        return False
    if not (event(text) if callable(event) else text == event):
        return False
    return all(line.get(name) == value for name, value in fields.items())


class CourierProcess:
    """One `python -m courier` process (a role chosen by MODE)."""

    def __init__(self, name: str, workdir: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "output.log"
        self.env = dict(env)
        self.port = int(env.get("PORT", "0"))
        self.metrics_port = int(env.get("METRICS_PORT", "0"))
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<CourierProcess {self.name} pid={self.pid if self._process else None}>"

    # Life cycle

    def start(self) -> CourierProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = clean_environment({"DATA_DIR": str(self.data_dir), **self.env})
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "courier"],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, f"{self.name} was never started"
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def send_signal(self, signum: signal.Signals) -> None:
        """Signal the process itself (the server the entrypoint exec'd), as `docker stop` does."""
        self.process.send_signal(signum)

    def kill_group(self) -> None:
        """SIGKILL the whole process group (the server and every child it forked)."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to `timeout`, then kill the group. The exit code, or None if killed."""
        if self._process is None:
            return None
        code: int | None = self._process.poll()
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
            try:
                code = self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
        self.kill_group()  # children left behind, if any
        return code

    # Logs

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines, parsed; other output (warnings, tracebacks) is skipped."""
        return parse_json_lines(self.log_text())

    def events(self, event: str | Callable[[str], bool], **fields: Any) -> list[dict[str, Any]]:
        return [line for line in self.logs() if matches(line, event, fields)]

    def wait_for_event(
        self,
        event: str | Callable[[str], bool],
        timeout: float = 30.0,
        count: int = 1,
        **fields: Any,
    ) -> list[dict[str, Any]]:
        """Wait until `count` lines have this event (and fields); fail if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(event, **fields)
            if len(found) >= count:
                return found
            if not self.running():
                raise AssertionError(
                    f"{self.name} exited ({self.process.poll()}) before logging {event!r}:\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name}: {len(found)}/{count} {event!r} lines within {timeout}s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def wait_worker_ready(self, timeout: float = 30.0) -> None:
        self.wait_for_event(lambda text: text.endswith(" ready."), timeout=timeout)

    # HTTP

    def url(self, path: str) -> str:
        assert self.port, f"{self.name} is not an API process"
        return f"http://{LOOPBACK}:{self.port}{path}"

    def wait_http(self, path: str = "/healthz", timeout: float = 30.0) -> None:
        """Wait until `path` answers 200."""
        deadline = time.monotonic() + timeout
        last: str = "no answer"
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                response = requests.get(self.url(path), timeout=2)
            except requests.RequestException as error:
                last = type(error).__name__
            else:
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: {path} not 200 within {timeout}s ({last})")

    def api(self, token: str = API_TOKEN) -> ApiClient:
        return ApiClient(self.url(""), token)


class ApiClient:
    """The courier HTTP API at `base_url`, with a bearer token."""

    def __init__(self, base_url: str, token: str, timeout: float = 15.0) -> None:
        self.base_url = base_url
        self.token = token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> requests.Response:
        all_headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        all_headers.update(headers or {})
        return requests.request(
            method,
            self.base_url + path,
            json=json_body,
            headers=all_headers,
            timeout=self.timeout,
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def submit(
        self, task: str, args: Mapping[str, Any], request_id: str | None = None
    ) -> requests.Response:
        headers = {"X-Request-ID": request_id} if request_id else {}
        return self.request(
            "POST", "/v1/jobs", json_body={"task": task, "args": dict(args)}, headers=headers
        )

    def submit_ok(self, task: str, args: Mapping[str, Any], request_id: str | None = None) -> str:
        """Submit and expect 202; the job id."""
        response = self.submit(task, args, request_id)
        assert response.status_code == 202, (response.status_code, response.text)
        job_id = response.json()["id"]
        assert isinstance(job_id, str)
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        return self.job_at(f"/v1/jobs/{job_id}")

    def job_at(self, path: str) -> dict[str, Any]:
        response = self.get(path)
        assert response.status_code == 200, (response.status_code, response.text)
        body: dict[str, Any] = response.json()
        return body

    def wait_for_job(
        self, job_id: str, states: Collection[str] = ("SUCCESS",), timeout: float = 20.0
    ) -> dict[str, Any]:
        return self.wait_for_job_at(f"/v1/jobs/{job_id}", states, timeout)

    def wait_for_job_at(
        self, path: str, states: Collection[str] = ("SUCCESS",), timeout: float = 20.0
    ) -> dict[str, Any]:
        """Poll the job at `path` until its state is in `states`; fail early on another final
        state."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.job_at(path)
            if body["state"] in states:
                return body
            if body["state"] in TERMINAL_STATES:
                raise AssertionError(f"{path} ended as {body}, expected {sorted(states)}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"{path} not in {sorted(states)} within {timeout}s: {body}")
            time.sleep(0.1)


class Courier:
    """Starts courier processes (for a test or a module) and stops every one at the end."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.processes: list[CourierProcess] = []

    def start(
        self, mode: str, broker_url: str, name: str | None = None, **env: str
    ) -> CourierProcess:
        """Start MODE=`mode` against `broker_url`; `env` adds or overrides variables."""
        name = name or f"{mode}{sum(p.env.get('MODE') == mode for p in self.processes) + 1}"
        settings = {
            "MODE": mode,
            "BROKER_URL": broker_url,
            "API_TOKENS": API_TOKEN,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            # Line by line: these tests read a log the moment a job's state says it ran.
            "LOG_FLUSH_INTERVAL": "0",
            "BROKER_CONNECT_TIMEOUT": "1",
            "WEB_CONCURRENCY": "2",
            "WORKER_CONCURRENCY": "2",
            "GRACEFUL_TIMEOUT": "5",
        }
        # Every role's metrics exporter on a port of its own, on the loopback interface.
        settings["METRICS_PORT"] = str(free_port())
        settings["HOST"] = LOOPBACK
        if mode == "api":
            settings["PORT"] = str(free_port())
        settings.update(env)
        process = CourierProcess(name, self.base_dir / name, settings)
        self.processes.append(process)
        return process.start()

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def finish(self, request: pytest.FixtureRequest) -> None:
        """Stop every process; print their logs if the requesting test (or module) failed."""
        self.stop_all()
        if failed(request.node):
            print(self.describe())

    def describe(self) -> str:
        """Every process's exit state and log tail: printed when a test fails."""
        parts = []
        for process in self.processes:
            code = process.process.poll() if process._process else None
            header = f"----- {process.name} (exit {code}) {process.log_path}"
            parts.append(f"{header}\n{process.log_tail()}")
        return "\n".join(parts)
