"""The API's gunicorn worker: each request is read whole before a thread serves it.

gunicorn's threaded worker hands a new connection to a pool thread, which waits up to 5 s for
its first bytes and then parses the request from a blocking socket with no deadline: a few idle
or byte-a-second clients hold every thread. `BufferingWorker` keeps the thread pool and the
event loop of gunicorn's `ThreadWorker`
but reads in the loop itself, without blocking: the request line, the headers, and a
Content-Length or chunked body of at most `max_body` bytes (`courier.api.framing` tells when the
request is complete). Only a complete request reaches a thread, which parses it with gunicorn's
own parser from memory. A request that is not complete in time is answered 408 and closed.

Every error this server answers itself (malformed or oversized requests, a timeout) is an RFC
9457 problem document like the app's, naming no input and no internals.

On SIGTERM the worker also serves the connections already waiting in the listen backlog (a
stock worker would reset them), then everything in flight, within the graceful timeout.
Plain HTTP/1.x only: TLS and HTTP/2 end at the load balancer.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import json
import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Any, ClassVar, Final

from gunicorn.http import errors as http_errors
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.parser import RequestParser
from gunicorn.http.unreader import Unreader
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from courier.api.framing import ContentTooLarge, HeadTooLarge, Limits, Progress, RequestScanner
from courier.logs import get_logger
from courier.names import PROBLEM_JSON

log = get_logger("courier.api.server")

MAX_HEAD_BYTES = 64 * 1024  # request line and headers together (gunicorn alone allows ~800 KiB)
RECV_BYTES = 64 * 1024
LINGER_SECONDS = 2.0  # after a final answer, unread input is drained this long (no RST)
SEND_TIMEOUT = 30.0  # a response (or an error) that cannot be sent in this time is dropped
STOP_IDLE_LINGER = 2.0  # on SIGTERM, how long an accepted connection may take to send anything
HEARTBEAT_SECONDS = 0.5
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
READ = selectors.EVENT_READ
_NOTHING_WAITING = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED)


@dataclass(frozen=True)
class ReadLimits:
    """What a client gets to send one request: seconds for the head, then for the body."""

    header_timeout: float
    body_timeout: float
    max_body: int


class RequestTimeout(Exception):
    """The request was not complete within its time: 408."""


class IncompleteRequest(Exception):
    """The client ended its side of the connection in the middle of a request: 400."""


class _HeldBytes(Unreader):  # type: ignore[misc]
    """An unreader over bytes the event loop already received: it never reads the socket, so a
    request parsed from it can never block a thread."""

    def chunk(self, size_hint: int | None = None) -> bytes:
        return b""


class _Connection(TConn):  # type: ignore[misc]
    READING, SERVING, IDLE, CLOSING, CLOSED = "reading", "serving", "idle", "closing", "closed"

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        # The parser is made here, not in a thread (`initialized` skips TConn.init()).
        self.parser = RequestParser(cfg, sock, client)
        self.parser.unreader = _HeldBytes()
        self.initialized = True
        self.stage = self.READING
        self.buffer = bytearray()
        self.scanner: RequestScanner | None = None
        self.deadline = 0.0
        self.registered = False
        self.continue_sent = False
        self.ready = False


class BufferingWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's ThreadWorker, reading each request whole in its event loop (see the module)."""

    limits: ClassVar[ReadLimits] = ReadLimits(header_timeout=10, body_timeout=30, max_body=65536)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadlines: list[tuple[float, int, _Connection]] = []
        self._order = itertools.count()
        self._next_heartbeat = 0.0
        self._closed_by_threads: deque[_Connection] = deque()  # appended to by pool threads
        self._addresses: dict[int, Any] = {}  # listener fd: the address it listens on
        self._framing = Limits(
            request_line=min(self.cfg.limit_request_line or 8190, 8190),
            head=MAX_HEAD_BYTES,
            body=self.limits.max_body,
            chunk_line=self.cfg.limit_request_field_size or 8190,
        )

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl or "h2" in cfg.http_protocols:
            raise RuntimeError(f"{cls.__name__} serves plain HTTP/1.x only")

    # -- the event loop ------------------------------------------------------------------------

    def run(self) -> None:
        self.poller.register(self.method_queue.fileno(), READ, self.method_queue.run_callbacks)
        self.set_accept_enabled(True)
        while self.alive:
            self._heartbeat()
            self._reap()
            can_accept = self.nr_conns < self.worker_connections
            if can_accept != self._accepting:
                self.set_accept_enabled(can_accept)
            self.wait_for_and_dispatch_events(timeout=self._wait())
            if not self.is_parent_alive():
                break
            self._expire()
            self.murder_keepalived()
        self._stop()

    def _stop(self) -> None:
        """Serve what was already sent to us (the backlog too) within the graceful timeout."""
        self.set_accept_enabled(False)
        self._drain_backlog()
        now = time.monotonic()
        self._cap_keepalive(now + STOP_KEEPALIVE_LINGER)
        # A connection that has sent nothing yet gets a moment for its request, not the whole
        # header timeout; one whose request is under way keeps its time.
        for _, _, conn in list(self._deadlines):
            if conn.stage == conn.READING and not conn.buffer:
                self._set_deadline(conn, min(conn.deadline, now + STOP_IDLE_LINGER))
        graceful_deadline = now + self.cfg.graceful_timeout
        while True:
            self._reap()
            if self.nr_conns <= 0 or time.monotonic() >= graceful_deadline:
                break
            self._heartbeat()
            self.wait_for_and_dispatch_events(timeout=self._wait())
            self._expire()
            self.murder_keepalived()
        self.murder_keepalived(force=True)
        self.tpool.shutdown(wait=False)
        self.poller.close()
        self.method_queue.close()

    def _drain_backlog(self) -> None:
        """Accept the connections the kernel already queued, then close the listeners: a stock
        worker would leave them to be reset when the last listener closes."""
        for listener in self.sockets:
            listener.setblocking(False)
            for _ in range(self.worker_connections):
                if not self._accept_one(listener):
                    break
            listener.close()

    def _heartbeat(self) -> None:
        """Tell the arbiter we are alive: at most every HEARTBEAT_SECONDS, not once per event
        (each is a system call; gunicorn's timeout is a minute)."""
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self.notify()
            self._next_heartbeat = now + HEARTBEAT_SECONDS

    def _wait(self) -> float:
        """Seconds until the loop must next look at the deadlines (at most one)."""
        if not self._deadlines:
            return 1.0
        return min(1.0, max(0.0, self._deadlines[0][0] - time.monotonic()))

    def _expire(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, conn = heapq.heappop(self._deadlines)
            if deadline != conn.deadline:
                continue  # superseded
            if conn.stage == conn.READING:
                self._refuse(conn, RequestTimeout())
            elif conn.stage == conn.CLOSING:
                self._drop(conn)

    def _set_deadline(self, conn: _Connection, deadline: float) -> None:
        conn.deadline = deadline
        heapq.heappush(self._deadlines, (deadline, next(self._order), conn))

    # -- reading requests ----------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        self._accept_one(listener)

    def _accept_one(self, listener: socket.socket) -> bool:
        """Accept one connection and start reading its request; False when none was waiting."""
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno in _NOTHING_WAITING:
                return False
            raise
        self.nr_conns += 1
        server = self._addresses.get(listener.fileno())
        if server is None:
            server = self._addresses[listener.fileno()] = listener.getsockname()
        conn = _Connection(self.cfg, client, address, server)
        self._start_reading(conn, b"")
        return True

    def enqueue_req(self, conn: _Connection) -> None:
        """A complete request goes to the pool; anything else (a kept-alive connection that
        became readable, bytes read ahead) starts reading the next request."""
        if conn.ready:
            conn.ready = False
            conn.stage = conn.SERVING
            self.tpool.submit(self._serve, conn)
            return
        self._start_reading(conn, conn.parser.unreader.take_buffered())

    def _start_reading(self, conn: _Connection, received: bytes) -> None:
        conn.stage = conn.READING
        conn.buffer = bytearray(received)
        conn.scanner = RequestScanner(self._framing)
        conn.continue_sent = False
        self._set_deadline(conn, time.monotonic() + self.limits.header_timeout)
        if received:
            self._advance(conn)
        else:
            self._receive(conn)

    def _receive(self, conn: _Connection, _: Any = None) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            self._register(conn, self._receive)
            return
        except OSError:
            self._drop(conn)
            return
        if not data:
            # The client stopped sending (a half-close): it may still read an answer.
            if conn.buffer:
                self._refuse(conn, IncompleteRequest())
            else:
                self._drop(conn)
            return
        conn.buffer += data
        self._advance(conn)

    def _advance(self, conn: _Connection) -> None:
        assert conn.scanner is not None
        was = conn.scanner.progress
        try:
            progress = conn.scanner.scan(conn.buffer)
        except (ContentTooLarge, HeadTooLarge) as error:
            self._refuse(conn, error)
            return
        if progress is Progress.WHOLE:
            self._unregister(conn)
            conn.deadline = 0.0
            conn.parser.unreader.unread(bytes(conn.buffer))
            conn.buffer = bytearray()
            conn.ready = True
            self.enqueue_req(conn)
            return
        if progress is Progress.BODY and was is Progress.HEAD:
            self._set_deadline(conn, time.monotonic() + self.limits.body_timeout)
            if conn.scanner.expects_continue:
                conn.continue_sent = True
                self._send_now(conn.sock, CONTINUE)
        self._register(conn, self._receive)

    # -- in a pool thread ----------------------------------------------------------------------

    def handle_request(self, req: Any, conn: _Connection) -> bool:
        if conn.continue_sent:
            req._expected_100_continue = False  # already sent while the body was read
        conn.sock.settimeout(SEND_TIMEOUT)
        if isinstance(req.body.reader, ChunkedReader):
            # De-chunk it here: a framing error is then this server's 400, never an exception
            # inside the app. It is in memory and at most max_body bytes.
            data = req.body.read()
            held = _HeldBytes()
            held.unread(data)
            req.body = Body(LengthReader(held, len(data)))
        try:
            return bool(super().handle_request(req, conn))
        except TimeoutError:
            log.warning("response not sent: the client did not read it in time")
            return False

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """Any error gunicorn answers itself, as a problem document."""
        status, detail = self._describe(exc)
        if status == 500:  # the server's fault, not the request's (501 is the client's)
            log.error("request failed in the server", exc_info=exc)
        else:
            log.warning("request refused", status=status, reason=type(exc).__name__)
        try:
            client.settimeout(SEND_TIMEOUT)
        except OSError:
            return
        self._send_now(client, problem_response(status, detail))

    # -- after a response ----------------------------------------------------------------------

    def _serve(self, conn: _Connection) -> None:
        """In a pool thread: serve the request; close the connection here when that is all
        there is to do (the event loop is not woken for it), else hand it back to the loop."""
        keep_alive = False
        try:
            keep_alive = bool(self.handle(conn))
        finally:
            if not keep_alive and self.alive and self._nothing_more_sent(conn):
                conn.close()
                self._closed_by_threads.append(conn)
            else:
                self.method_queue.defer(self._served, conn, keep_alive)

    @staticmethod
    def _nothing_more_sent(conn: _Connection) -> bool:
        """True when the client sent nothing after its request: closing then resets nothing."""
        try:
            conn.sock.setblocking(False)
            return not conn.sock.recv(1, socket.MSG_PEEK)
        except OSError:  # nothing waiting, or the connection is gone anyway
            return True

    def _reap(self) -> None:
        """Count the connections pool threads closed."""
        while self._closed_by_threads:
            self._closed_by_threads.popleft().stage = _Connection.CLOSED
            self.nr_conns -= 1

    def _served(self, conn: _Connection, keep_alive: bool) -> None:
        """Back in the event loop after a response: keep the connection, or close it."""
        if not keep_alive:
            if self._nothing_more_sent(conn):
                self._drop(conn)
            else:
                self._close_after_answer(conn)
        elif conn.parser.unreader.buf.getvalue():
            conn.sock.setblocking(False)
            self.enqueue_req(conn)  # the next request was read ahead with this one
        else:
            conn.sock.setblocking(False)
            conn.stage = conn.IDLE
            conn.set_timeout()
            if not self.alive:
                conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
            self.keepalived_conns.append(conn)
            self.poller.register(conn.sock, READ, partial(self.on_client_socket_readable, conn))

    def _refuse(self, conn: _Connection, error: Exception) -> None:
        """Answer an incomplete request with a problem and close the connection."""
        status, detail = self._describe(error)
        log.warning("request refused", status=status, reason=type(error).__name__)
        self._unregister(conn)
        self._send_now(conn.sock, problem_response(status, detail))
        self._close_after_answer(conn)

    def _close_after_answer(self, conn: _Connection) -> None:
        """Half-close, then discard what the client still sends for a moment before closing:
        closing with unread input would reset the connection and could lose the answer."""
        self._unregister(conn)
        conn.stage = conn.CLOSING
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(conn)
            return
        self._set_deadline(conn, time.monotonic() + LINGER_SECONDS)
        self._register(conn, self._discard)

    def _discard(self, conn: _Connection, _: Any = None) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        self._unregister(conn)
        conn.stage = conn.CLOSED
        conn.deadline = 0.0
        conn.buffer = bytearray()
        self.nr_conns -= 1
        conn.close()

    # -- helpers -------------------------------------------------------------------------------

    def _register(self, conn: _Connection, callback: Any) -> None:
        if not conn.registered:
            self.poller.register(conn.sock, READ, partial(callback, conn))
            conn.registered = True

    def _unregister(self, conn: _Connection) -> None:
        if conn.registered:
            conn.registered = False
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)

    @staticmethod
    def _send_now(sock: socket.socket, data: bytes) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(data)

    def _describe(self, error: BaseException) -> tuple[int, str]:
        return describe(error, self.limits, self._framing)


# RFC 9110's reason phrases (Python's `HTTPStatus` has older ones for 413 and 414 before 3.13).
TITLES: Final = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


def describe(error: BaseException, limits: ReadLimits, framing: Limits) -> tuple[int, str]:
    """The status and detail of the problem answering `error`: said in general terms (a
    message of gunicorn's may quote the request, a token included)."""
    e = http_errors
    if isinstance(error, RequestTimeout):
        return 408, (
            f"The request was not complete in time ({_seconds(limits.header_timeout)} for "
            f"the request line and headers, then {_seconds(limits.body_timeout)} for the body)."
        )
    if isinstance(error, IncompleteRequest):
        return 400, "The request ended before it was complete."
    if isinstance(error, ContentTooLarge):
        return 413, f"The body must be at most {limits.max_body} bytes."
    if isinstance(error, HeadTooLarge | e.LimitRequestHeaders):
        return 431, (
            "The request headers are too large: too many, one too long, or more than "
            f"{framing.head} bytes in all."
        )
    if isinstance(error, e.LimitRequestLine):
        return 414, f"The request line must be at most {framing.request_line} bytes."
    if isinstance(error, e.ExpectationFailed):
        return 417, "The only expectation supported is `Expect: 100-continue`."
    if isinstance(error, e.UnsupportedTransferCoding):
        return 501, "Unsupported Transfer-Encoding: send the body with Content-Length or chunked."
    if isinstance(error, e.InvalidChunkSize | e.ChunkMissingTerminator | e.InvalidChunkExtension):
        return 400, "The chunked body is malformed."
    if isinstance(error, e.InvalidRequestLine | e.InvalidRequestMethod | e.InvalidHTTPVersion):
        return 400, "The request line is not a valid HTTP/1.1 request line."
    if isinstance(error, e.InvalidHeader) and getattr(error, "hdr", None) in (
        "CONTENT-LENGTH",
        "TRANSFER-ENCODING",
    ):
        return 400, "Content-Length or Transfer-Encoding is invalid, repeated, or both are sent."
    if isinstance(error, e.InvalidHeader | e.InvalidHeaderName | e.ObsoleteFolding):
        return 400, "A request header is malformed."
    if isinstance(error, e.ConfigurationProblem | e.InvalidResponseHeader):
        return 500, "The server failed to answer this request."
    if isinstance(error, e.ParseException):
        return 400, "The request is not valid HTTP/1.1."
    return 500, "The server failed to answer this request."


def problem_response(status: int, detail: str) -> bytes:
    """A complete HTTP/1.1 response carrying a problem document; the connection closes."""
    title = TITLES.get(status) or HTTPStatus(status).phrase
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    head = (
        f"HTTP/1.1 {status} {title}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return (head + body).encode("latin-1")


def _seconds(value: float) -> str:
    return f"{value:g} s"


def buffering_worker(read_limits: ReadLimits) -> type[BufferingWorker]:
    """The worker class gunicorn runs, with these limits."""

    class ConfiguredBufferingWorker(BufferingWorker):
        limits: ClassVar[ReadLimits] = read_limits

    return ConfiguredBufferingWorker
