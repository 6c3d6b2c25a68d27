"""Prometheus metrics of every role, with `prometheus-client`.

Each process of a container (gunicorn's workers, Celery's pool processes, beat) writes its
values to files in one folder (the client's multiprocess mode: `PROMETHEUS_MULTIPROC_DIR`, set by
the entrypoint to a folder in memory); the process that serves `METRICS_PORT` sums them at scrape
time, with the queue depth read from the broker then, within a bounded timeout. The files of
processes that died are folded into one file per kind, so a long-lived container does not
collect a file per replaced process. The names are a contract for dashboards and alerts: see the
README.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from courier.names import METRICS_DIR_ENV

# Seconds: from a quick health probe to a job near the default hard limit.
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


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
    if os.environ.get(METRICS_DIR_ENV):
        mark_process_dead(pid)


def fold_dead_processes(folder: Path) -> int:
    """Fold the metric files of processes no longer alive into one file per kind (and gauge
    mode), so that files do not pile up as processes are replaced; the number of processes
    folded. Scrapes give the same values before and after: counters, histograms and summing
    gauges add up, max, min and most-recent gauges keep their extreme or latest value, and live
    gauges (and per-process ones) of a dead process are dropped, as `mark_process_dead` does."""
    folded: set[int] = set()
    for path in sorted(folder.glob("*_*.db")):
        kind, _, rest = path.stem.partition("_")
        mode, _, pid_text = rest.rpartition("_")
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        merge = _MERGES.get(kind if kind != "gauge" else mode)
        if merge is not None:
            target = MmapedDict(str(folder / f"{kind}_{mode + '_' if mode else ''}dead.db"))
            try:
                for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(path)):
                    target.write_value(key, *merge(target.read_value(key), (value, timestamp)))
            finally:
                target.close()
        path.unlink()
        folded.add(int(pid_text))
    return len(folded)


Sample = tuple[float, float]  # value, timestamp


def _added(kept: Sample, new: Sample) -> Sample:
    return kept[0] + new[0], max(kept[1], new[1])


def _latest(kept: Sample, new: Sample) -> Sample:
    return new if new[1] >= kept[1] else kept


# How a dead process's samples join the folded file, by metric kind or gauge mode. A kind or
# mode not here (`live*`, `all`: values of live processes, or labelled by pid) is dropped.
_MERGES: Final[dict[str, Callable[[Sample, Sample], Sample]]] = {
    "counter": _added,
    "histogram": _added,
    "summary": _added,
    "sum": _added,
    "max": lambda kept, new: max(kept, new),
    "min": lambda kept, new: new if new[0] < kept[0] or kept == (0.0, 0.0) else kept,
    "mostrecent": _latest,
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# A queue's name, its waiting jobs, and when its oldest was queued (None: not known).
QueueDepth = tuple[str, int, float | None]
QueueDepths = Callable[[], Iterator[QueueDepth]]


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
                if count == 0:
                    age.add_metric([queue], 0.0)
                elif oldest is not None:  # a job queued by another producer carries no stamp
                    age.add_metric([queue], max(0.0, time.time() - oldest))
        yield depth
        yield age


def exposition_registry(*collectors: Any) -> CollectorRegistry:
    """What a scrape answers: every process's values (multiprocess mode), and `collectors`."""
    registry = CollectorRegistry()
    if os.environ.get(METRICS_DIR_ENV):
        MultiProcessCollector(registry)
    for collector in collectors:
        registry.register(collector)
    return registry
