"""Helpers of the fault suite: reading events out of container logs, timing signals, and a
stdlib-only HTTP load generator that runs inside a container on the test's network.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from testcontainers.core.container import DockerContainer

from courier.testing import HARDENING
from courier.testing.containers import container_logs, json_logs
from tests.stack import Stack, wait_until

REDIS_URL = "redis://redis:6379/0"
VENV_PYTHON = "/opt/venv/bin/python"


def timestamp(line: dict[str, Any]) -> float:
    """The epoch seconds of a JSON log line (structlog writes ISO 8601 UTC)."""
    return datetime.fromisoformat(str(line["timestamp"])).timestamp()


def events(
    containers: Iterable[DockerContainer],
    match: str | Callable[[str], bool],
    **fields: Any,
) -> list[tuple[DockerContainer, dict[str, Any]]]:
    """Log lines of `containers` (running or exited) whose event matches, with their container."""
    found = []
    for container in containers:
        for line in json_logs(container):
            text = str(line.get("event", ""))
            hit = match(text) if callable(match) else text == match
            if hit and all(line.get(key) == value for key, value in fields.items()):
                found.append((container, line))
    return found


def count_by_task(containers: Iterable[DockerContainer], event: str) -> Counter[str]:
    """How often each task id logged `event` across `containers`."""
    return Counter(str(line.get("task_id")) for _, line in events(containers, event))


def wait_events(container: DockerContainer, event: str, count: int, timeout: float) -> float:
    """Wait until the container has logged `event` at least `count` times."""
    return wait_until(
        lambda: len(events([container], event)) >= count,
        timeout,
        interval=0.2,
        what=f"{count} x {event!r} from {container._name}",
    )


def wait_log_count(container: DockerContainer, text: str, count: int, timeout: float) -> float:
    """Wait until `text` appears at least `count` times in the container's log."""
    return wait_until(
        lambda: container_logs(container).count(text) >= count,
        timeout,
        interval=0.2,
        what=f"{count} x {text!r}",
    )


def container_status(container: DockerContainer) -> str:
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    return str(wrapped.status)


def docker_stop(container: DockerContainer, grace: int) -> float:
    """`docker stop -t grace`: SIGTERM, then SIGKILL after `grace` s; the seconds it took."""
    started = time.monotonic()
    container.get_wrapped_container().stop(timeout=grace)
    return time.monotonic() - started


def docker_kill(container: DockerContainer) -> float:
    """`docker kill` (SIGKILL); the wall-clock time once the signal was delivered (a line the
    container logged just before it carries an earlier timestamp)."""
    container.get_wrapped_container().kill()
    return time.time()


def python_script(
    system: Stack, script: str, env: dict[str, str], name: str | None = None
) -> DockerContainer:
    """Run a stdlib `script` with the courier image's Python, hardened, on the stack's network."""
    container = DockerContainer(system.image, env=env)
    container.with_kwargs(**HARDENING, entrypoint=[VENV_PYTHON, "-c", script])
    alias = name or f"script-{uuid.uuid4().hex[:8]}"
    return system.add_container(container, alias, container_name=name)


# The load generator: THREADS threads, each sending sequential requests (GET /healthz, POST
# /v1/jobs demo.add, GET /v1/jobs/<id>) on a fresh connection each, for at most DURATION seconds
# and MAX_REQUESTS requests. Each request is classified:
#   ok       any status below 500
#   5xx      a status of 500 or more
#   refused  the connection could not be made (refused, name gone, unreachable)
#   reset    the connection was made, then reset, closed early or timed out (a dropped request)
# At the end it prints one line: `SUMMARY {json}` with counts and [kind, start, end] records.
LOADGEN = r"""
import http.client, json, os, socket, threading, time

HOST = os.environ["TARGET_HOST"]
PORT = int(os.environ.get("TARGET_PORT", "5001"))
TOKEN = os.environ["TOKEN"]
THREADS = int(os.environ.get("THREADS", "4"))
DURATION = float(os.environ.get("DURATION", "10"))
MAX_REQUESTS = int(os.environ.get("MAX_REQUESTS", "2000"))
GIVE_UP_AFTER = float(os.environ.get("GIVE_UP_AFTER", "3"))

records = []
errors = {}
lock = threading.Lock()
began = time.time()


def note(kind, start, status, detail=None):
    with lock:
        records.append([kind, round(start, 4), round(time.time(), 4), status])
        if detail:
            errors[detail] = errors.get(detail, 0) + 1


def request(method, path, body=None):
    start = time.time()
    conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
    try:
        conn.connect()
    except OSError as error:
        note("refused", start, None, "connect:" + type(error).__name__)
        return "refused", None
    try:
        headers = {"Authorization": "Bearer " + TOKEN, "Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        status = response.status
    except (OSError, http.client.HTTPException) as error:
        note("reset", start, None, "after-connect:" + type(error).__name__)
        return "reset", None
    finally:
        conn.close()
    note("5xx" if status >= 500 else "ok", start, status)
    return "ok", (status, data)


def run(index):
    job_id = None
    refused_since = None
    for i in range(MAX_REQUESTS):
        if time.time() - began > DURATION:
            return
        step = i % 3
        if step == 1:
            body = json.dumps({"task": "demo.add", "args": {"a": index, "b": i}})
            kind, answer = request("POST", "/v1/jobs", body)
            if answer and answer[0] == 202:
                job_id = json.loads(answer[1])["id"]
        elif step == 2 and job_id:
            kind, _ = request("GET", "/v1/jobs/" + job_id)
        else:
            kind, _ = request("GET", "/healthz")
        if kind == "refused":
            refused_since = refused_since or time.time()
            if time.time() - refused_since > GIVE_UP_AFTER:
                return
            time.sleep(0.1)
        else:
            refused_since = None


threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(THREADS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(DURATION + 30)
with lock:
    counts = {}
    for record in records:
        counts[record[0]] = counts.get(record[0], 0) + 1
    statuses = {}
    for record in records:
        if record[3] is not None:
            statuses[str(record[3])] = statuses.get(str(record[3]), 0) + 1
    summary = {
        "began": began,
        "ended": time.time(),
        "requests": len(records),
        "counts": counts,
        "statuses": statuses,
        "errors": errors,
        "records": records,
    }
print("SUMMARY " + json.dumps(summary), flush=True)
"""


def loadgen_summary(container: DockerContainer) -> dict[str, Any]:
    """The load generator's `SUMMARY` line, parsed."""
    for line in container_logs(container).splitlines():
        if line.startswith("SUMMARY "):
            summary: dict[str, Any] = json.loads(line.removeprefix("SUMMARY "))
            return summary
    summary_missing = container_logs(container)[-3000:]
    raise AssertionError(f"the load generator printed no summary:\n{summary_missing}")
