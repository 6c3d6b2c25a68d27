"""The metrics exporter: a small process of its own beside the role, serving `METRICS_PORT`.

Forked by the entrypoint before the role starts, so the role's processes hold no extra thread
when they fork theirs. It sums the metric files every process of the container writes, reads the
queue depth from the broker at scrape time (bounded by BROKER_TIMEOUT), and exits when the role
does. One exporter per container, whatever the role: Prometheus scrapes every container alike.

Like the API, it cannot be held by an idle or slow client: each connection has a thread of its
own (at most `MAX_CONNECTIONS`) and `CLIENT_TIMEOUT` seconds to send its request; what the server
itself refuses is answered as a problem document.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from courier import logs
from courier.buildinfo import build_info
from courier.names import METRICS_DIR_ENV, PROBLEM_JSON, QUEUED_AT_HEADER
from courier.settings import Settings, is_redis_url, redis_tls_options

QUEUES: Final = ("celery",)  # Celery's default queue: every task courier declares goes there
MAX_CONNECTIONS: Final = 16  # scrapers at once; more are closed at once
CLIENT_TIMEOUT: Final = 10.0  # seconds a connection may take to send its request
# In memory: /dev/shm is a tmpfs of every container (read-only root file system or not).
SHARED_MEMORY: Final = Path("/dev/shm")  # noqa: S108 - the container's own

QueueDepths = Iterator[tuple[str, int, float | None]]


def metrics_dir(settings: Settings) -> Path:
    """Where this entrypoint's processes write their metric files: in memory when it can be,
    in a folder named after the entrypoint's pid (outside a container, /dev/shm is shared)."""
    if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK):
        return SHARED_MEMORY / f"courier-metrics-{os.getpid()}"
    return settings.data_dir / "metrics"


def prepare_multiprocess_dir(folder: Path) -> None:
    """An empty folder for this container's metric files, named in the environment before
    anyone imports `prometheus_client` (it reads the variable once, at import)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ[METRICS_DIR_ENV] = str(folder)


def start_exporter(settings: Settings) -> int | None:
    """Fork the exporter; its pid (None when METRICS_PORT is 0)."""
    if not settings.metrics_port:
        return None
    parent = os.getpid()
    logs.flush()
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
        logs.flush()
        os._exit(0)


class _Handler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT  # on the socket: an idle or slow client is dropped

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (one every few seconds from every Prometheus)."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the server refuses before the app (a bad request line, say): a problem
        document, as everywhere in courier."""
        status = HTTPStatus(code)
        body = json.dumps(
            {"type": "about:blank", "title": status.phrase, "status": code, "detail": message}
        ).encode()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.send_response(code, status.phrase)
            self.send_header("Content-Type", PROBLEM_JSON)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)


class _Server(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most MAX_CONNECTIONS at once."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # a flood of connections: refused, never queued
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away or timed out: nothing to report."""


def _serve(settings: Settings, parent: int) -> None:
    from prometheus_client import make_wsgi_app

    from courier.logs import get_logger
    from courier.metrics import (
        Metrics,
        QueueCollector,
        exposition_registry,
        fold_dead_processes,
    )

    info = build_info()
    Metrics().build_info.labels(info.version, info.commit).set(1)
    registry = exposition_registry(QueueCollector(queue_reader(settings)))
    serve_metrics = make_wsgi_app(registry)
    folder = Path(os.environ[METRICS_DIR_ENV])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with contextlib.suppress(OSError, ValueError):
            fold_dead_processes(folder)
        return serve_metrics(environ, start_response)  # type: ignore[no-any-return]

    _Server.address_family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    try:
        server = _Server((settings.host, settings.metrics_port), _Handler)
    except OSError as error:
        get_logger("courier.metrics").error(
            "cannot serve metrics", port=settings.metrics_port, error=error.strerror
        )
        return
    server.set_app(app)
    server.timeout = 1.0
    while os.getppid() == parent:  # the role is gone: so is its exporter
        server.handle_request()


def queue_reader(settings: Settings) -> Callable[[], QueueDepths]:
    """How this container reads its broker's queues: Redis, RabbitMQ or the embedded one."""
    if is_redis_url(settings.broker_url):
        return RedisQueues(settings).depths
    if settings.embedded:
        return EmbeddedQueues(settings.data_dir / "broker").depths
    return AmqpQueues(settings).depths


class RedisQueues:
    """Waiting jobs of a Redis broker, on one pooled connection with bounded timeouts."""

    def __init__(self, settings: Settings) -> None:
        import redis

        self._client = redis.Redis.from_url(
            settings.broker_url,
            socket_timeout=settings.broker_timeout,
            socket_connect_timeout=settings.broker_connect_timeout,
            **(redis_tls_options(settings.broker_url) or {}),
        )

    def depths(self) -> QueueDepths:
        """(queue, waiting jobs, when the oldest was queued) for each queue."""
        for queue in QUEUES:
            pipeline = self._client.pipeline()
            pipeline.llen(queue)
            pipeline.lindex(queue, -1)  # the oldest: kombu pushes on the left, pops on the right
            depth, oldest = pipeline.execute()
            yield queue, int(depth), queued_at(oldest)


class EmbeddedQueues:
    """Waiting jobs of the embedded broker: its message files (the oldest sorts first)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def depths(self) -> QueueDepths:
        for queue in QUEUES:
            waiting = sorted(self._folder.glob(f"*.{queue}.msg"))
            oldest = None
            with contextlib.suppress(OSError):
                oldest = queued_at(waiting[0].read_bytes()) if waiting else None
            yield queue, len(waiting), oldest


class AmqpQueues:
    """Waiting jobs of a RabbitMQ broker (a passive declare; AMQP cannot show the oldest
    without taking it, so there is no age), on a connection with bounded timeouts."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def depths(self) -> QueueDepths:
        from kombu.connection import Connection

        settings = self._settings
        timeout = settings.broker_timeout
        with Connection(  # type: ignore[no-untyped-call]
            settings.broker_url,
            connect_timeout=settings.broker_connect_timeout,
            transport_options={"read_timeout": timeout, "write_timeout": timeout},
        ) as connection:
            for queue in QUEUES:
                channel = connection.channel()
                try:
                    _, depth, _ = channel.queue_declare(queue=queue, passive=True)
                except connection.channel_errors:
                    continue  # not declared yet: no worker and no job ever used it
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()
                yield queue, int(depth), None


def queued_at(raw: bytes | None) -> float | None:
    """The queue time a message's courier stamp says, or None (no message, or no stamp)."""
    if not raw:
        return None
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return float(json.loads(raw)["headers"][QUEUED_AT_HEADER])
    return None
