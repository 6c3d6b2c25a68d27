"""The API role: gunicorn serving the Falcon app, run in this process (its master is PID 1 in a
container, so it receives SIGTERM itself)."""

from __future__ import annotations

import os
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from courier.api.app import create_app
from courier.api.buffering import ReadLimits, buffering_worker
from courier.logs import logging_config
from courier.metrics import forget_process
from courier.plugin import Plugin
from courier.queue.app import create_celery
from courier.settings import Settings


class _NoAccessLogLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger without its access log. With `logconfig_dict` set gunicorn would build
    an access record for every request, only for its handler-less logger to drop it."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "bind": f"[{settings.host}]:{settings.port}"
        if ":" in settings.host
        else f"{settings.host}:{settings.port}",
        "workers": settings.web_concurrency,
        # Requests are read whole, without blocking, before a thread serves them: slow or idle
        # clients cannot hold the threads (see courier.api.buffering).
        "worker_class": buffering_worker(
            ReadLimits(
                header_timeout=settings.request_header_timeout,
                body_timeout=settings.request_body_timeout,
                max_body=settings.max_body_bytes,
            )
        ),
        "threads": settings.web_threads,
        "keepalive": settings.keepalive_timeout,
        # The app is built once here, before the workers fork: they answer as soon as they
        # exist, and a broken app stops the server at start instead of in a crash loop.
        "preload_app": True,
        # On SIGTERM, requests in flight (and connections already queued) get this long.
        "graceful_timeout": settings.graceful_timeout,
        "timeout": 60,
        # Our middleware writes one access line per request with the request id.
        "accesslog": None,
        "logger_class": _NoAccessLogLogger,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "logconfig_dict": logging_config(settings.log_level, settings.log_format),
        # Heartbeat files of the workers: in memory where there is /dev/shm (the root file system
        # may be read-only), else in the data directory.
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else str(settings.data_dir),  # noqa: S108
        "proc_name": "courier-api",
        # No control socket: it would be written under $HOME, which is read-only in the image.
        "control_socket_disable": True,
        # A dead web worker's live gauges stop counting (its counters still do).
        "child_exit": _forget_worker,
    }


def _forget_worker(server: Any, worker: Any) -> None:
    forget_process(worker.pid)


class _Server(BaseApplication):  # type: ignore[misc]
    """gunicorn with its options and app given here, not read from a command line."""

    def __init__(self, application: Any, options: dict[str, Any]) -> None:
        self._application = application
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._application


def serve(settings: Settings, plugin: Plugin) -> int:
    """Serve the API until gunicorn stops; its exit code."""
    application = create_app(settings, create_celery(settings, plugin), plugin)
    try:
        _Server(application, gunicorn_options(settings)).run()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    return 0
