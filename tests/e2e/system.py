"""Helpers of the end-to-end suite (whose systems are `courier.testing.CourierStack`s):
readers of the containers' JSON log lines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import requests

from tests.stack import wait_until

STARTUP_TIMEOUT = 120.0
# The image's user (distroless `nonroot`), which every courier container runs as.
NONROOT = 65532


def is_worker_ready(line: dict[str, Any]) -> bool:
    event = str(line.get("event", ""))
    return line.get("logger") == "celery.apps.worker" and event.endswith(" ready.")


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
