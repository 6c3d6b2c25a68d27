"""Prometheus metrics of every role, with `prometheus-client`.

Each process of a container (gunicorn's workers, Celery's pool processes, beat) writes its
values to files in one folder (the client's multiprocess mode: `PROMETHEUS_MULTIPROC_DIR`, set by
the entrypoint to `DATA_DIR/metrics`, a tmpfs in the image); the process that serves
`METRICS_PORT` sums them at scrape time, with the queue depth read from the broker then, within
a bounded timeout. The names are a contract for dashboards and alerts: see the README.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"  # set by the entrypoint, see exporter.py
# Seconds: from a quick health probe to a job near the default hard limit.
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
QUEUED_AT_HEADER: Final = "courier_queued_at"


class _Off:
    """A metric that records nothing (METRICS_PORT=0): every call is a no-op."""

    def labels(self, *values: str) -> _Off:
        return self

    def inc(self, amount: float = 1) -> None: ...

    def set(self, value: float) -> None: ...

    def observe(self, value: float) -> None: ...


class Metrics:
    """Every metric of courier, in one registry (one instance per process). Disabled, every
    metric is a no-op: nothing is written and nothing costs."""

    def __init__(self, registry: CollectorRegistry | None = None, enabled: bool = True) -> None:
        if not enabled:
            off: Any = _Off()
            self.registry = CollectorRegistry()
            self.http_requests = self.http_duration = self.jobs_submitted = off
            self.jobs_refused = self.tasks = self.task_duration = self.tasks_redelivered = off
            self.beat_last_tick = self.beat_lock_held = self.build_info = off
            return
        registry = registry or CollectorRegistry()
        self.registry = registry
        self.http_requests = Counter(
            "courier_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "courier_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.jobs_submitted = Counter(
            "courier_jobs_submitted", "Jobs queued by the API.", ["task"], registry=registry
        )
        self.jobs_refused = Counter(
            "courier_jobs_refused",
            "Submissions the API refused, by task and reason (invalid, unknown_task, unavailable).",
            ["task", "reason"],
            registry=registry,
        )
        self.tasks = Counter(
            "courier_tasks",
            "Task runs by state: started, succeeded, failed, retried, rejected.",
            ["task", "state"],
            registry=registry,
        )
        self.task_duration = Histogram(
            "courier_task_duration_seconds",
            "Run time of a task, start to finish.",
            ["task"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.tasks_redelivered = Counter(
            "courier_tasks_redelivered",
            "Jobs delivered again (their worker was lost, or they were put back).",
            ["task"],
            registry=registry,
        )
        self.beat_last_tick = Gauge(
            "courier_beat_last_tick_timestamp_seconds",
            "When beat's scheduler last ticked (Unix time).",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.beat_lock_held = Gauge(
            "courier_beat_lock_held",
            "1 while this beat holds the lock and sends periodic jobs, else 0.",
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.build_info = Gauge(
            "courier_build_info",
            "Always 1: the version and revision of the image (its labels say the same).",
            ["version", "revision"],
            registry=registry,
            multiprocess_mode="max",
        )


def forget_process(pid: int) -> None:
    """A dead process's live gauges no longer count (its counters still do)."""
    if os.environ.get(MULTIPROC_ENV):
        mark_process_dead(pid)


QueueDepths = Callable[[], Iterator[tuple[str, int, float | None]]]


class QueueCollector:
    """`courier_queue_depth` and `courier_queue_oldest_age_seconds`, read at scrape time.
    A broker that does not answer within its timeout leaves them out of that scrape."""

    def __init__(self, depths: QueueDepths) -> None:
        self._depths = depths

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "courier_queue_depth", "Jobs waiting in the queue.", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "courier_queue_oldest_age_seconds",
            "How long the oldest waiting job has waited.",
            labels=["queue"],
        )
        with contextlib.suppress(Exception):
            for queue, count, oldest in self._depths():
                depth.add_metric([queue], count)
                age.add_metric([queue], 0.0 if oldest is None else max(0.0, time.time() - oldest))
        yield depth
        yield age


def exposition_registry(*collectors: Any) -> CollectorRegistry:
    """What a scrape answers: every process's values (multiprocess mode), and `collectors`."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)
    for collector in collectors:
        registry.register(collector)
    return registry
