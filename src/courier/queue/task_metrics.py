"""Task metrics from Celery's signals, in the worker's pool processes (and its main process for
the messages it refuses): `courier_tasks_total{task,state}`, the run time, redeliveries."""

from __future__ import annotations

import time
from typing import Any

from celery import signals

from courier.metrics import Metrics
from courier.queue.trust import InvalidArguments

# Names of tasks the worker does not know come from whoever queued the message: never a label.
UNREGISTERED = "(unregistered)"
UNREADABLE = "(unreadable)"


def _metrics(app: Any) -> Metrics | None:
    found = getattr(app, "metrics", None)
    return found if isinstance(found, Metrics) else None


def _started(task: Any, **_: Any) -> None:
    metrics = _metrics(task.app)
    if metrics is None:
        return
    metrics.tasks.labels(task.name, "started").inc()
    if (task.request.delivery_info or {}).get("redelivered"):
        metrics.tasks_redelivered.labels(task.name).inc()
    task.request.courier_started = time.perf_counter()


def _finished(task: Any, **_: Any) -> None:
    metrics, started = _metrics(task.app), getattr(task.request, "courier_started", None)
    if metrics is not None and started is not None:
        metrics.task_duration.labels(task.name).observe(time.perf_counter() - started)


def _succeeded(sender: Any, **_: Any) -> None:
    if metrics := _metrics(sender.app):
        metrics.tasks.labels(sender.name, "succeeded").inc()


def _failed(sender: Any, exception: BaseException | None = None, **_: Any) -> None:
    if metrics := _metrics(sender.app):
        state = "rejected" if isinstance(exception, InvalidArguments) else "failed"
        metrics.tasks.labels(sender.name, state).inc()


def _retried(sender: Any, **_: Any) -> None:
    if metrics := _metrics(sender.app):
        metrics.tasks.labels(sender.name, "retried").inc()


def _refused(name: str) -> Any:
    def count(sender: Any, **_: Any) -> None:
        if metrics := _metrics(sender.app):
            metrics.tasks.labels(name, "rejected").inc()

    return count


_unknown = _refused(UNREGISTERED)
_unreadable = _refused(UNREADABLE)


def connect() -> None:
    """Connect the handlers (once: by dispatch uid)."""
    signals.task_prerun.connect(_started, dispatch_uid="courier.metrics.started")
    signals.task_postrun.connect(_finished, dispatch_uid="courier.metrics.finished")
    signals.task_success.connect(_succeeded, dispatch_uid="courier.metrics.succeeded")
    signals.task_failure.connect(_failed, dispatch_uid="courier.metrics.failed")
    signals.task_retry.connect(_retried, dispatch_uid="courier.metrics.retried")
    signals.task_unknown.connect(_unknown, dispatch_uid="courier.metrics.unknown")
    signals.task_rejected.connect(_unreadable, dispatch_uid="courier.metrics.rejected")
