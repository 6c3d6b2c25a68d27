"""The metrics exporter: a small process of its own beside the role, serving `METRICS_PORT`.

Forked by the entrypoint before the role starts, so the role's processes hold no extra thread
when they fork theirs. It sums the metric files every process of the container writes, reads the
queue depth from the broker at scrape time (bounded by BROKER_TIMEOUT), and exits when the role
does. One exporter per container, whatever the role: Prometheus scrapes every container alike.

Like the API, it cannot be held by an idle or slow client: each connection has a thread of its
own (at most `MAX_CONNECTIONS`) and `CLIENT_TIMEOUT` seconds in all to be served, then it is
closed; what the server itself refuses is answered as a problem document. Scrapes are answered
one at a time (the folding of dead processes' files and the reading of them must not overlap).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from courier import logs
from courier.buildinfo import build_info
from courier.names import METRICS_DIR_ENV, PROBLEM_JSON, QUEUED_AT_HEADER
from courier.settings import Settings, is_redis_url, redis_tls_options

if TYPE_CHECKING:  # prometheus_client is imported by the exporter's process alone
    from courier.metrics import QueueDepth, QueueDepths

QUEUES: Final = ("celery",)  # Celery's default queue: every task courier declares goes there
MAX_CONNECTIONS: Final = 16  # scrapers at once; more are closed at once
CLIENT_TIMEOUT: Final = 10.0  # seconds a connection has, in all, to be served
# In memory: /dev/shm is a tmpfs of every container (read-only root file system or not). It may
# be shared (the containers of a Kubernetes pod, `--ipc`): each container makes a folder of its
# own there, never one named after a pid (every container's entrypoint is pid 1).
SHARED_MEMORY: Final = Path("/dev/shm")  # noqa: S108 - a folder of our own in it


def prepare_multiprocess_dir(settings: Settings) -> Path:
    """A new, empty folder of this container's for its metric files (in memory when it can
    be), named in the environment before anyone imports `prometheus_client` (it reads the
    variable once, at import)."""
    if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK):
        parent = SHARED_MEMORY
    else:
        parent = settings.data_dir
    folder = Path(tempfile.mkdtemp(prefix="courier-metrics-", dir=parent))  # mode 0700
    os.environ[METRICS_DIR_ENV] = str(folder)
    creator = os.getpid()

    def remove() -> None:  # by the process that made it (forked ones inherit the hook)
        if os.getpid() == creator:
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
    return folder


def start_exporter(settings: Settings) -> int | None:
    """Fork the exporter; its pid (None when METRICS_PORT is 0)."""
    if not settings.metrics_port:
        return None
    parent = os.getpid()
    sys.stdout.flush()  # (courier's own waiting lines are written before any fork)
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
    timeout = CLIENT_TIMEOUT  # on each read: an idle client is dropped...

    def setup(self) -> None:
        super().setup()
        # ...and a slow one too: the connection is closed when its time is up, whatever it
        # is sending.
        self._deadline = threading.Timer(CLIENT_TIMEOUT, self._close)
        self._deadline.daemon = True
        self._deadline.start()

    def finish(self) -> None:
        self._deadline.cancel()
        with contextlib.suppress(OSError):
            super().finish()

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)

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


class _Server6(_Server):
    address_family = socket.AF_INET6


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

    one_at_a_time = threading.Lock()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with one_at_a_time:
            with contextlib.suppress(OSError, ValueError):
                fold_dead_processes(folder)
            return list(serve_metrics(environ, start_response))

    server_class = _Server6 if ":" in settings.host else _Server
    try:
        server = server_class((settings.host, settings.metrics_port), _Handler)
    except OSError as error:
        get_logger("courier.metrics").error(
            "cannot serve metrics", port=settings.metrics_port, error=error.strerror
        )
        return
    server.set_app(app)
    server.timeout = 1.0
    while os.getppid() == parent:  # the role is gone: so is its exporter
        server.handle_request()


def queue_reader(settings: Settings) -> QueueDepths:
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

    def depths(self) -> Iterator[QueueDepth]:
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

    def depths(self) -> Iterator[QueueDepth]:
        for queue in QUEUES:
            waiting = sorted(self._folder.glob(f"*.{queue}.msg"))
            oldest = None
            with contextlib.suppress(OSError):
                oldest = queued_at(waiting[0].read_bytes()) if waiting else None
            yield queue, len(waiting), oldest


class AmqpQueues:
    """Waiting jobs of a RabbitMQ broker (a passive declare; AMQP cannot show the oldest
    without taking it, so there is no age), on one connection with bounded timeouts, opened
    again only after a failure."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._connection: Any = None

    def depths(self) -> Iterator[QueueDepth]:
        try:
            connection = self._connect()
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
        except Exception:
            connection, self._connection = self._connection, None
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.release()
            raise

    def _connect(self) -> Any:
        if self._connection is None:
            from kombu.connection import Connection

            settings = self._settings
            timeout = settings.broker_timeout
            self._connection = Connection(  # type: ignore[no-untyped-call]
                settings.broker_url,
                connect_timeout=settings.broker_connect_timeout,
                transport_options={"read_timeout": timeout, "write_timeout": timeout},
            )
        return self._connection


def queued_at(raw: bytes | None) -> float | None:
    """The queue time a message's courier stamp says, or None (no message, or no stamp)."""
    if not raw:
        return None
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return float(json.loads(raw)["headers"][QUEUED_AT_HEADER])
    return None
