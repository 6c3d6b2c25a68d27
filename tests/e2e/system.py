"""Helpers of the end-to-end suite: a whole courier system (api, workers, beat and its brokers)
started from the built image on a `tests.stack.Stack`, and readers of the containers' JSON logs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from tests.stack import ApiClient, Stack, json_lines, raw_logs, wait_until

REDIS_BROKER = {"BROKER_URL": "redis://redis:6379/0", "RESULT_BACKEND": "redis://redis:6379/1"}
RABBITMQ_BROKER = {
    "BROKER_URL": "amqp://guest:guest@rabbitmq:5672//",
    "RESULT_BACKEND": "redis://redis:6379/1",
}
BROKERS = {"redis": REDIS_BROKER, "rabbitmq": RABBITMQ_BROKER}
STARTUP_TIMEOUT = 120.0
# The image's user (distroless `nonroot`), which every courier container runs as.
NONROOT = 65532


@dataclass
class System:
    """One running courier system: the containers of each role and a client of its API."""

    stack: Stack
    broker: str
    api: Any
    workers: list[Any]
    beat: Any | None
    client: ApiClient
    infrastructure: list[Any] = field(default_factory=list)

    def roles(self) -> dict[str, Any]:
        """Role name -> container, for every courier container (workers numbered)."""
        named: dict[str, Any] = {"api": self.api}
        for index, worker in enumerate(self.workers, start=1):
            named["worker" if len(self.workers) == 1 else f"worker-{index}"] = worker
        if self.beat is not None:
            named["beat"] = self.beat
        return named

    def worker_lines(self) -> list[dict[str, Any]]:
        return [line for worker in self.workers for line in json_lines(worker)]

    def dump_logs(self, tail: int = 60) -> None:
        for name, container in {**self.roles(), **infra_names(self.infrastructure)}.items():
            lines = raw_logs(container).splitlines()[-tail:]
            print(f"\n----- {name} ({container.get_wrapped_container().name}) -----")
            print("\n".join(lines))


def infra_names(containers: Iterable[Any]) -> dict[str, Any]:
    return {f"infra-{i}": container for i, container in enumerate(containers, start=1)}


def start_system(
    stack: Stack,
    broker: str = "redis",
    *,
    workers: int = 1,
    beat: bool = True,
    env: dict[str, str] | None = None,
    api_env: dict[str, str] | None = None,
) -> System:
    """Brokers, then api (published on 127.0.0.1), `workers` workers and optionally beat.

    Returns once the API is ready (broker and result backend answer) and every worker has logged
    that it is ready to consume.
    """
    infrastructure = []
    if broker == "rabbitmq":
        infrastructure.append(stack.rabbitmq())
    infrastructure.append(stack.redis())
    common = {**BROKERS[broker], **(env or {})}
    api = stack.courier(
        "api", {**common, **(api_env or {})}, name=f"e2e-api-{stack.suffix}", publish=True
    )
    worker_containers = [
        stack.courier("worker", common, name=f"e2e-worker{i}-{stack.suffix}")
        for i in range(1, workers + 1)
    ]
    beat_container = (
        stack.courier("beat", common, name=f"e2e-beat-{stack.suffix}") if beat else None
    )
    system = System(
        stack, broker, api, worker_containers, beat_container, stack.api_client(api), infrastructure
    )
    try:
        api_ready = system.client.wait_ready(STARTUP_TIMEOUT)
        for worker in worker_containers:
            wait_worker_ready(worker)
    except Exception:
        system.dump_logs()
        raise
    print(f"\n[e2e] {broker} system up: api ready after {api_ready:.1f}s of polling")
    return system


def is_worker_ready(line: dict[str, Any]) -> bool:
    event = str(line.get("event", ""))
    return line.get("logger") == "celery.apps.worker" and event.endswith(" ready.")


def wait_worker_ready(worker: Any, timeout: float = STARTUP_TIMEOUT) -> float:
    """Wait for Celery's "celery@<host> ready." line: the worker consumes from now on."""
    return wait_until(
        lambda: any(is_worker_ready(line) for line in json_lines(worker)),
        timeout,
        interval=0.5,
        what=f"worker {worker.get_wrapped_container().name} ready",
    )


def events(lines: Iterable[dict[str, Any]], event: str, **fields: Any) -> list[dict[str, Any]]:
    """The log lines whose `event` is `event` and whose fields equal `fields`."""
    return [
        line
        for line in lines
        if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
    ]


def wait_for_lines(
    read: Callable[[], list[dict[str, Any]]],
    select: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    count: int = 1,
    timeout: float = 30.0,
    what: str = "log lines",
) -> list[dict[str, Any]]:
    """Poll `read()` until `select(lines)` holds at least `count` lines; return them."""
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        nonlocal found
        found = select(read())
        return len(found) >= count

    wait_until(enough, timeout, interval=0.3, what=what)
    return found


def timestamp(line: dict[str, Any]) -> float:
    """The line's ISO 8601 `timestamp` as seconds since the epoch."""
    return datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")).timestamp()


def as_json(response: requests.Response) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.content)
    return body
