"""The metrics exporter: a small process of its own beside the role, serving `METRICS_PORT`.

Forked by the entrypoint before the role starts, so the role's processes hold no extra thread
when they fork theirs. It sums the metric files every process of the container writes, reads the
queue depth from the broker at scrape time (bounded by BROKER_TIMEOUT), and exits when the role
does. One exporter per container, whatever the role: Prometheus scrapes every container alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from courier.buildinfo import build_info
from courier.settings import Settings, is_redis_url, redis_tls_options

QUEUES: Final = ("celery",)  # Celery's default queue: every task courier declares goes there
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(folder: Path) -> None:
    """An empty folder for this container's metric files, named in the environment before
    anyone imports `prometheus_client` (it reads the variable once, at import)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)


def start_exporter(settings: Settings) -> int | None:
    """Fork the exporter; its pid (None when METRICS_PORT is 0)."""
    if not settings.metrics_port:
        return None
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the role
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _serve(settings, parent)
    finally:
        os._exit(0)


def _serve(settings: Settings, parent: int) -> None:
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import make_wsgi_app

    from courier.logs import get_logger
    from courier.metrics import Metrics, QueueCollector, exposition_registry

    info = build_info()
    Metrics().build_info.labels(info.version, info.commit).set(1)
    registry = exposition_registry(QueueCollector(QueueReader(settings).depths))

    class Server(WSGIServer):
        address_family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes are not logged (one every few seconds from every Prometheus)."""

    try:
        server = make_server(
            settings.host, settings.metrics_port, make_wsgi_app(registry), Server, QuietHandler
        )
    except OSError as error:
        get_logger("courier.metrics").error(
            "cannot serve metrics", port=settings.metrics_port, error=error.strerror
        )
        return
    server.timeout = 1.0
    while os.getppid() == parent:  # the role is gone: so is its exporter
        server.handle_request()


class QueueReader:
    """Waiting jobs of a Redis broker, on one pooled connection with bounded timeouts."""

    def __init__(self, settings: Settings) -> None:
        self._client: Any = None
        if is_redis_url(settings.broker_url):
            import redis

            self._client = redis.Redis.from_url(
                settings.broker_url,
                socket_timeout=settings.broker_timeout,
                socket_connect_timeout=settings.broker_connect_timeout,
                **(redis_tls_options(settings.broker_url) or {}),
            )

    def depths(self) -> Iterator[tuple[str, int, float | None]]:
        """(queue, waiting jobs, when the oldest was queued) for each queue."""
        if self._client is None:
            return
        from courier.metrics import QUEUED_AT_HEADER

        for queue in QUEUES:
            depth, oldest = self._client.pipeline().llen(queue).lindex(queue, -1).execute()
            queued_at = None
            if oldest:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    queued_at = float(json.loads(oldest)["headers"][QUEUED_AT_HEADER])
            yield queue, int(depth), queued_at
