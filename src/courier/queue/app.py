"""The Celery app: reliable defaults, JSON only, the plugin's tasks, and the request id carried
into task logs. Built by `create_celery(settings, plugin)`; nothing is built at import."""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import structlog
from celery import Celery, bootsteps, signals
from celery.exceptions import CPendingDeprecationWarning
from kombu.serialization import register
from kombu.utils import json

from courier import liveness, logs
from courier.metrics import Metrics
from courier.names import QUEUED_AT_HEADER, REQUEST_ID_HEADER
from courier.plugin import Plugin
from courier.queue import embedded_transport, redis_backend, redis_transport, task_metrics
from courier.queue.trust import DeclaredTask, allowed_tasks, keep_only
from courier.settings import Settings, is_redis_url, redis_tls_options
from courier.tasks import TaskDeclaration

# Beat's publishing against a broker that is away: a few short retries, then the next tick.
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
# The API's calls to the result backend: no retry inside Celery. `courier.queue.dependencies`
# tries a fast failure once more and answers 503 after a timeout, within BROKER_TIMEOUT.
NO_RETRY_POLICY = {"max_retries": 0}

# JSON that refuses what is not JSON (NaN, Infinity), for results: same content type, so
# anything reading results decodes them as before.
STRICT_JSON = "courier-json"

# Worker processes (MODE=worker, and the worker of MODE=all) wait out a broker or backend restart
# (about a minute) instead of failing the job: storing its result, or re-queueing it when it calls
# retry(). The API keeps the short policies above and answers 503 within seconds.
PATIENT_RETRY_POLICY = {
    "max_retries": 30,
    "interval_start": 0,
    "interval_step": 1,
    "interval_max": 2,
}
# Bounds of the API's broker calls that a worker's consumer must not have: it reconnects
# patiently, and waits on an idle AMQP connection for as long as no job comes.
_API_ONLY_TRANSPORT_OPTIONS: Final = ("max_retries", "read_timeout", "write_timeout")
WORKER_SETTINGS: dict[str, Any] = {
    "task_publish_retry_policy": PATIENT_RETRY_POLICY,
    "result_backend_transport_options": {"retry_policy": PATIENT_RETRY_POLICY},
    "result_backend_always_retry": True,
    "result_backend_max_retries": 40,
    "result_backend_base_sleep_between_retries_ms": 100,
    "result_backend_max_sleep_between_retries_ms": 2000,
}


class CourierCelery(Celery):  # type: ignore[misc]
    """A Celery app that knows courier's settings and plugin.

    They are attributes, never entries of `conf`: Celery publishes its configuration (remote
    control's `inspect conf`, Flower), and the settings hold passwords and tokens.
    """

    settings: Settings
    plugin: Plugin
    catalog: Mapping[str, TaskDeclaration]
    metrics: Metrics


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    if settings.embedded:
        folder = str(settings.data_dir / "broker")
        return {
            "data_folder_in": folder,
            "data_folder_out": folder,
            embedded_transport.UNACKED_OPTION: str(settings.data_dir / "broker-unacked"),
            "control_folder": str(settings.data_dir / "control"),
            # The folder is listed this often when idle (kombu's default, 1 s, delays every job).
            "polling_interval": 0.1,
        }
    if is_redis_url(settings.broker_url):
        return {
            # A message whose worker died unacknowledged is redelivered after this long...
            "visibility_timeout": settings.visibility_timeout,
            # ...by a worker's sweep for such messages: every few seconds (at most 10), scanning
            # Redis each time. Kombu's defaults scan only every 10th sweep of 10 s: 100 s late.
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 2)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": settings.broker_connect_timeout,
            # Every call is bounded: a paused Redis fails a request instead of hanging it...
            "socket_timeout": settings.broker_timeout,
            # ...and a failed connection attempt is not tried again for seconds: the API
            # answers 503 (a worker reconnects patiently: WORKER_SETTINGS drops this).
            "max_retries": 0,
        }
    # RabbitMQ: a hung server fails a publish or a readiness probe within BROKER_TIMEOUT too
    # (a worker, whose consumer waits for messages, does without: see WORKER_SETTINGS).
    return {"read_timeout": settings.broker_timeout, "write_timeout": settings.broker_timeout}


def celery_config(settings: Settings, plugin: Plugin) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        # JSON only: a pickled message is refused, never run.
        "task_serializer": "json",
        # Results too, but strict: NaN and Infinity, which are not JSON, fail the job instead.
        "result_serializer": STRICT_JSON,
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Acknowledge after the task ran, one message at a time: a job whose worker dies is
        # redelivered to another worker instead of being lost.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # On a lost broker connection Celery can terminate the running jobs for the broker to
        # redeliver: AMQP does, at once. Not with Redis: the job is first marked RETRY in the
        # result backend (by default that same Redis, unreachable); that fails, so Celery records
        # it REVOKED and acknowledges it once Redis is back: lost. On Redis running jobs finish
        # instead; an acknowledgement that cannot be delivered means a redelivery after
        # VISIBILITY_TIMEOUT, never a loss.
        "worker_cancel_long_running_tasks_on_connection_loss": not is_redis_url(
            settings.broker_url
        ),
        # A redelivered message whose job already succeeded (its acknowledgement was lost with
        # the connection) is skipped instead of run again.
        "worker_deduplicate_successful_tasks": True,
        "task_track_started": True,
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "result_expires": settings.result_expires,
        "broker_transport_options": broker_transport_options(settings),
        "broker_use_ssl": redis_tls_options(settings.broker_url),
        "redis_backend_use_ssl": redis_tls_options(settings.result_backend),
        "broker_connection_timeout": settings.broker_connect_timeout,
        # A producer for every API thread: a thread never waits, unbounded, for another's.
        "broker_pool_limit": max(10, settings.web_threads),
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
        "redis_socket_connect_timeout": settings.broker_connect_timeout,
        "redis_socket_timeout": settings.broker_timeout,
        # No hidden retry after a timeout: the API decides (courier.queue.jobs), the worker
        # retries patiently (WORKER_SETTINGS).
        "redis_retry_on_timeout": False,
        "result_backend_transport_options": {"retry_policy": NO_RETRY_POLICY},
        # The filesystem transport has no broadcast: no remote control in the embedded mode.
        "worker_enable_remote_control": not settings.embedded,
        # Task events (Flower's view); Flower switches them on by remote control too.
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "beat_schedule": {name: dict(entry) for name, entry in plugin.periodic_jobs.items()},
        # Beat ticks (renewing its lock, touching its liveness file) at least this often.
        "beat_max_loop_interval": max(
            1, min(int(liveness.INTERVAL), settings.beat_lock_timeout // 3)
        ),
    }


def create_celery(settings: Settings, plugin: Plugin) -> CourierCelery:
    """The Celery app of `settings`, with every task the plugin declares."""
    _install_process_hooks()
    # kombu's Redis transport with a fix that keeps a worker alive when Redis goes away, and a
    # filesystem transport that keeps a job until it is acknowledged.
    redis_transport.install()
    embedded_transport.install()
    redis_backend.install()
    if settings.embedded:
        for folder in ("broker", "broker-unacked", "control", "results"):
            (settings.data_dir / folder).mkdir(parents=True, exist_ok=True)
    celery = CourierCelery("courier")
    celery.settings = settings
    celery.plugin = plugin
    celery.metrics = Metrics(enabled=bool(settings.metrics_port))
    declarations = plugin.tasks()
    celery.catalog = {d.name: d for d in declarations if d.public}
    celery.conf.update(celery_config(settings, plugin))
    for declaration in declarations:
        # shared=False: the task belongs to this app only (Celery's default adds it to all).
        celery.task(
            name=declaration.name,
            shared=False,
            base=DeclaredTask,
            declaration=declaration,
            **declaration.options,
        )(declaration.run)
    # Never touch the backend here: a worker builds it only once its own settings apply.
    allowed = allowed_tasks(
        celery.catalog, plugin.periodic_jobs, results_expire=is_redis_url(settings.result_backend)
    )
    celery.on_after_finalize.connect(lambda sender, **_: keep_only(sender, allowed), weak=False)
    celery.steps["worker"].add(LivenessFile)
    return celery


def load_celery() -> CourierCelery:
    """The app from this process's environment, logging configured: what an entry module
    needs. A bad setting or plugin ends the process (exit code 78)."""
    from courier.boot import boot_or_exit
    from courier.logs import configure_logging

    settings, plugin = boot_or_exit()
    configure_logging(settings)
    return create_celery(settings, plugin)


class LivenessFile(bootsteps.StartStopStep):  # type: ignore[misc]
    """Touch a file from the worker's event loop, so `courier healthcheck` sees a live worker."""

    requires: ClassVar[set[str]] = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.path = liveness.liveness_file(worker.app.settings.data_dir, "worker")
        self.timer_ref: Any = None

    def start(self, worker: Any) -> None:
        self.touch()
        self.timer_ref = worker.timer.call_repeatedly(liveness.INTERVAL, self.touch)

    def stop(self, worker: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
        self.path.unlink(missing_ok=True)

    def touch(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()


def _install_process_hooks() -> None:
    """courier's handlers of Celery's process-wide signals (connected once: by dispatch uid)."""
    register(
        STRICT_JSON,
        functools.partial(json.dumps, allow_nan=False),
        json.loads,
        content_type="application/json",
        content_encoding="utf-8",
    )
    # Whether running jobs are cancelled on a lost connection is chosen per broker above;
    # Celery's reminder to choose, logged on every lost connection, is noise.
    warnings.filterwarnings(
        "ignore",
        message=r"\s*In Celery 5.1 we introduced an optional breaking change",
        category=CPendingDeprecationWarning,
    )
    signals.celeryd_init.connect(_apply_worker_settings, dispatch_uid="courier.worker_settings")
    signals.setup_logging.connect(_keep_our_logging, dispatch_uid="courier.logging")
    signals.task_prerun.connect(_bind_task_context, dispatch_uid="courier.task_context")
    signals.task_postrun.connect(_clear_task_context, dispatch_uid="courier.task_context_clear")
    signals.before_task_publish.connect(_stamp_queued_at, dispatch_uid="courier.queued_at")
    # A pool process ends with os._exit: its last log lines are written out first.
    signals.worker_process_shutdown.connect(_flush_logs, dispatch_uid="courier.flush_logs")
    task_metrics.connect()


def _apply_worker_settings(conf: Any, **_: Any) -> None:
    """Sent once in a worker before it builds anything: apply the worker-only settings."""
    conf.update(WORKER_SETTINGS)
    options = dict(conf.broker_transport_options)
    for bound in _API_ONLY_TRANSPORT_OPTIONS:
        options.pop(bound, None)
    conf.broker_transport_options = options


def _keep_our_logging(**_: Any) -> None:
    """A receiver here stops Celery from configuring logging: courier already did."""


def _bind_task_context(task_id: str, task: Any, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=task.name)
    request_id = task.request.get(REQUEST_ID_HEADER)
    if request_id:
        structlog.contextvars.bind_contextvars(request_id=request_id)


def _clear_task_context(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()


def _flush_logs(**_: Any) -> None:
    logs.flush()


def _stamp_queued_at(headers: dict[str, Any], **_: Any) -> None:
    """When a message was queued, for the age of the oldest waiting job (the protocol has no
    such field)."""
    headers.setdefault(QUEUED_AT_HEADER, time.time())
