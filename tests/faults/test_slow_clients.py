"""Slow, idle and malformed clients against the built image and a real Redis.

1. 200 connections held open (idle, a partial request line, a head or a body sent a byte a
   second): /healthz keeps answering within a second and a bounded load of real requests
   completes with no error; the server answers each slow connection 408 and closes it;
2. each request gunicorn itself refuses gets an RFC 9457 problem with the right status, naming
   neither the request nor the server's internals.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from courier.testing.containers import container_logs as raw_logs
from courier.testing.containers import json_logs as json_lines
from tests.faults.helpers import REDIS_URL
from tests.faults.security_support import PROBLEM_JSON
from tests.stack import ApiClient, Stack, wait_until

HEADER_TIMEOUT = 10.0  # REQUEST_HEADER_TIMEOUT's default
BODY_TIMEOUT = 15.0
PER_GROUP = 50
HEALTHZ_BOUND = 1.0  # the bound on /healthz under slow clients
LOAD_PAIRS = 150  # POST /v1/jobs + GET /v1/jobs/{id}, at most, while the slow clients hold on
CLOSE_MARGIN = 20.0  # how long past its timeout a slow connection may stay open, at most


@pytest.fixture
def system(courier_image: str) -> Iterator[Stack]:
    with Stack(courier_image) as created:
        yield created


def api_address(client: ApiClient) -> tuple[str, int]:
    host, _, port = client.base_url.removeprefix("http://").rpartition(":")
    return host, int(port)


# -- 1. slow and idle connections ----------------------------------------------------------------


@dataclass
class SlowClient:
    """One connection that sends `opening` at once, then `trickle` one byte a second."""

    group: str
    sock: socket.socket
    opening: bytes
    trickle: bytes
    timeout: float  # the server's timeout that applies to it
    opened: float = 0.0
    sent: int = 0
    received: bytes = b""
    closed: float | None = None

    def send_next_byte(self) -> None:
        if self.closed is None and self.sent < len(self.trickle):
            try:
                self.sock.send(self.trickle[self.sent : self.sent + 1])
                self.sent += 1
            except OSError:
                pass  # closed by the server: seen when reading


def slow_clients(address: tuple[str, int], token: str) -> list[SlowClient]:
    post_head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: api\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    groups = [
        ("idle", b"", b"", HEADER_TIMEOUT),
        ("partial request line", b"GET /heal", b"", HEADER_TIMEOUT),
        ("head, a byte a second", b"GET /healthz HTTP/1.1\r\nX-Slow: ", b"a" * 600, HEADER_TIMEOUT),
        ("body, a byte a second", post_head, b'{"task": "demo.add"' + b" " * 600, BODY_TIMEOUT),
    ]
    clients = []
    for group, opening, trickle, timeout in groups:
        for _ in range(PER_GROUP):
            sock = socket.create_connection(address, timeout=5)
            sock.setblocking(False)
            client = SlowClient(group, sock, opening, trickle, timeout, opened=time.monotonic())
            if opening:
                sock.send(opening)
            clients.append(client)
    return clients


def hold_until_closed(clients: list[SlowClient], deadline: float) -> None:
    """Send each client's next byte every second and read what the server answers, until the
    server has closed every connection (or `deadline`)."""
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
    next_tick = time.monotonic()
    while any(c.closed is None for c in clients) and time.monotonic() < deadline:
        if time.monotonic() >= next_tick:
            for client in clients:
                client.send_next_byte()
            next_tick += 1.0
        for key, _ in selector.select(timeout=0.1):
            client = key.data
            try:
                data = client.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                client.received += data
            else:
                client.closed = time.monotonic()
                selector.unregister(client.sock)
    selector.close()
    for client in clients:
        client.sock.close()


@dataclass
class Probes:
    """/healthz latencies and the outcome of the real requests made meanwhile."""

    healthz: list[float] = field(default_factory=list)
    healthz_failures: list[str] = field(default_factory=list)
    load_statuses: list[int] = field(default_factory=list)
    load_errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def probe_healthz(client: ApiClient, probes: Probes) -> None:
    """A fresh connection every quarter second, as a load balancer's health check makes."""
    while not probes.stop.is_set():
        started = time.monotonic()
        try:
            response = requests.get(f"{client.base_url}/healthz", timeout=HEALTHZ_BOUND + 4)
            probes.healthz.append(time.monotonic() - started)
            if response.status_code != 200:
                probes.healthz_failures.append(str(response.status_code))
        except requests.RequestException as error:
            probes.healthz.append(time.monotonic() - started)
            probes.healthz_failures.append(type(error).__name__)
        probes.stop.wait(0.25)


def real_load(client: ApiClient, probes: Probes) -> None:
    """Submit a job and read it back, LOAD_PAIRS times at most, until told to stop."""
    session = requests.Session()
    session.headers["Authorization"] = client.session.headers["Authorization"]
    for number in range(LOAD_PAIRS):
        if probes.stop.is_set():
            return
        try:
            posted = session.post(
                f"{client.base_url}/v1/jobs",
                json={"task": "demo.add", "args": {"a": number, "b": 1}},
                timeout=10,
            )
            probes.load_statuses.append(posted.status_code)
            if posted.status_code == 202:
                read = session.get(f"{client.base_url}{posted.headers['Location']}", timeout=10)
                probes.load_statuses.append(read.status_code)
        except requests.RequestException as error:
            probes.load_errors.append(type(error).__name__)
        probes.stop.wait(0.05)


def problem_of(raw: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers (lower-case names) and JSON body of one raw HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(body)))
    document: dict[str, Any] = json.loads(body[:length]) if body else {}
    return int(status_line.split(" ")[1]), headers, document


def assert_problem_document(raw: bytes, status: int, label: str) -> dict[str, Any]:
    assert raw.startswith(f"HTTP/1.1 {status} ".encode()), (label, raw[:200])
    code, headers, document = problem_of(raw)
    assert headers.get("content-type") == PROBLEM_JSON, (label, headers)
    assert set(document) >= {"type", "title", "status", "detail"}, (label, document)
    assert document["status"] == code == status, (label, document)
    assert all(isinstance(document[k], str) and document[k] for k in ("type", "title", "detail"))
    return document


@pytest.mark.timeout(300)
def test_slow_and_idle_connections_do_not_starve_the_api(system: Stack) -> None:
    system.add_redis()
    env = {"BROKER_URL": REDIS_URL, "REQUEST_BODY_TIMEOUT": str(int(BODY_TIMEOUT))}
    api = system.courier("api", env)
    client = system.api_client(api)
    client.wait_ready()

    clients = slow_clients(api_address(client), system.token)
    probes = Probes()
    threads = [
        threading.Thread(target=probe_healthz, args=(client, probes), daemon=True),
        threading.Thread(target=real_load, args=(client, probes), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        hold_until_closed(clients, deadline=time.monotonic() + BODY_TIMEOUT + CLOSE_MARGIN)
    finally:
        probes.stop.set()
        for thread in threads:
            thread.join(30)

    print(f"\n[slow clients] {len(clients)} connections held open to one API (2 workers):")
    for group in dict.fromkeys(c.group for c in clients):
        members = [c for c in clients if c.group == group]
        lives = [c.closed - c.opened for c in members if c.closed is not None]
        answered = sum(1 for c in members if c.received.startswith(b"HTTP/1.1 408 "))
        print(
            f"  {group}: {len(members)}, closed by the server {len(lives)} "
            f"after {min(lives, default=0):.1f}-{max(lives, default=0):.1f} s "
            f"(timeout {members[0].timeout:g} s), answered 408: {answered}"
        )
    load_ok = sum(1 for status in probes.load_statuses if status in (200, 202))
    print(
        f"  /healthz meanwhile: {len(probes.healthz)} probes, max {max(probes.healthz):.3f} s, "
        f"median {statistics.median(probes.healthz):.3f} s, failures {probes.healthz_failures}; "
        f"real requests: {len(probes.load_statuses)} answered ({load_ok} 2xx), "
        f"errors {probes.load_errors}"
    )

    def refusals() -> int:
        lines = json_lines(api)
        return sum(1 for x in lines if x.get("event") == "request refused" and x["status"] == 408)

    # The engine copies a container's output to its log a moment after it was written.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: refusals() >= len(clients), 15, what="every 408 logged")
    logged = refusals()
    print(f"  the API logged {logged} refusals with 408")

    still_open = [c.group for c in clients if c.closed is None]
    assert not still_open, f"{len(still_open)} slow connections never closed: {still_open[:5]}"
    for slow in clients:
        assert_problem_document(slow.received, 408, slow.group)
    assert not probes.healthz_failures
    assert max(probes.healthz) < HEALTHZ_BOUND
    assert len(probes.healthz) >= HEADER_TIMEOUT * 2, "too few probes to say anything"
    assert not probes.load_errors
    assert probes.load_statuses, "no real request was made"
    assert set(probes.load_statuses) <= {200, 202}, probes.load_statuses
    assert logged == len(clients)
    assert client.http_get("/healthz").status_code == 200
    assert "Traceback" not in raw_logs(api)


# -- 2. requests gunicorn refuses ------------------------------------------------------------------

SECRET = "Secret-Value-9f8e7d6c5b4a"  # sent inside each malformed request: never echoed


@dataclass(frozen=True)
class Malformed:
    label: str
    status: int
    raw: bytes
    half_close: bool = False  # the client ends its side after sending, then reads the answer


def malformed_requests() -> list[Malformed]:
    head = f"POST /v1/jobs HTTP/1.1\r\nHost: api\r\nX-Note: {SECRET}\r\n".encode()
    json_head = head + b"Content-Type: application/json\r\n"
    chunked_head = json_head + b"Transfer-Encoding: chunked\r\n\r\n"
    fields = b"".join(b"X-Field-%d: %s\r\n" % (n, SECRET.encode()) for n in range(150))
    secret = SECRET.encode()
    te, cl = b"Transfer-Encoding: ", b"Content-Length: "
    return [
        Malformed("not a request line", 400, b"GARBAGE " + secret + b"\r\n\r\n"),
        Malformed("lower-case method", 400, b"get /" + secret + b" HTTP/1.1\r\n\r\n"),
        Malformed("HTTP/9.9", 400, b"GET /" + secret + b" HTTP/9.9\r\n\r\n"),
        Malformed("bare LF line ends", 400, b"GET /" + secret + b" HTTP/1.1\nHost: a\n\n"),
        Malformed("URI too long", 414, b"GET /" + secret + b"a" * 5000 + b" HTTP/1.1\r\n\r\n"),
        Malformed("one header too large", 431, head + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n"),
        Malformed("too many headers", 431, head + fields + b"\r\n"),
        Malformed("head over 64 KiB, unterminated", 431, head + b"X-Big: " + b"a" * 70000),
        Malformed("header without a colon", 400, head + b"Authorization " + secret + b"\r\n\r\n"),
        Malformed("space in a header name", 400, head + b"Bad Name: " + secret + b"\r\n\r\n"),
        Malformed("obsolete line folding", 400, head + b"X-A: 1\r\n " + secret + b"\r\n\r\n"),
        Malformed("NUL in a header value", 400, head + b"X-A: a\x00b\r\n\r\n"),
        Malformed("Expect: magic", 417, json_head + b"Expect: magic\r\n" + cl + b"2\r\n\r\n"),
        Malformed("Transfer-Encoding: xchunked", 501, head + te + b"xchunked\r\n\r\n"),
        Malformed("chunked, then gzip", 400, head + te + b"chunked, gzip\r\n\r\n"),
        Malformed("chunked on HTTP/1.0", 400, b"POST / HTTP/1.0\r\n" + te + b"chunked\r\n\r\n"),
        Malformed(
            "Content-Length and chunked", 400, json_head + cl + b"2\r\n" + te + b"chunked\r\n\r\n{}"
        ),
        Malformed("two Content-Lengths", 400, json_head + cl + b"2\r\n" + cl + b"3\r\n\r\n"),
        Malformed("Content-Length not a number", 400, json_head + cl + b"1e3\r\n\r\n"),
        Malformed("Content-Length over MAX_BODY_BYTES", 413, json_head + cl + b"70000\r\n\r\n"),
        Malformed("chunk size not hex", 400, chunked_head + secret + b"\r\n{}\r\n0\r\n\r\n"),
        Malformed("chunk without CRLF", 400, chunked_head + b"2\r\n{}XX0\r\n\r\n"),
        Malformed("bad chunk extension", 400, chunked_head + b"2;\x01\r\n{}\r\n0\r\n\r\n"),
        Malformed("forbidden trailer", 400, chunked_head + b"2\r\n{}\r\n0\r\nHost: x\r\n\r\n"),
        Malformed(
            "chunked body over MAX_BODY_BYTES", 413, chunked_head + b"11170\r\n" + b"x" * 70000
        ),
        Malformed("chunked body cut off", 400, chunked_head + b'20\r\n{"task"', half_close=True),
        Malformed("Content-Length body cut off", 400, json_head + cl + b"100\r\n\r\n{", True),
    ]


def exchange(address: tuple[str, int], case: Malformed) -> bytes:
    """Send the raw request; everything the server answers until it closes the connection."""
    with socket.create_connection(address, timeout=HEADER_TIMEOUT + 10) as sock:
        try:
            sock.sendall(case.raw)
            if case.half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # answered and closed before everything was sent: read the answer
        received = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
    return received


@pytest.mark.timeout(300)
def test_requests_the_server_refuses_get_problem_documents(system: Stack) -> None:
    system.add_redis()
    api = system.courier("api", {"BROKER_URL": REDIS_URL})
    client = system.api_client(api)
    client.wait_ready()
    address = api_address(client)

    outcomes = []
    cases = malformed_requests()
    for case in cases:
        started = time.monotonic()
        raw = exchange(address, case)
        took = time.monotonic() - started
        document = assert_problem_document(raw, case.status, case.label)
        assert set(document) == {"type", "title", "status", "detail"}, document
        assert SECRET not in raw.decode("latin-1"), case.label
        assert took < HEADER_TIMEOUT, f"{case.label}: answered only after {took:.1f}s"
        outcomes.append(f"  {case.status} {document['title']}: {case.label} ({took:.2f} s)")
    print(f"\n{len(outcomes)} malformed requests, each a problem document:")
    print("\n".join(outcomes))

    # Each refusal is logged once; wait for the last ones to reach the container's log.
    def refusals() -> int:
        return sum(1 for line in json_lines(api) if line.get("event") == "request refused")

    wait_until(lambda: refusals() >= len(cases), 15, what="every refusal logged")
    logs = raw_logs(api)
    assert SECRET not in logs
    assert "Traceback" not in logs
    assert not [line for line in json_lines(api) if line.get("event") == "unhandled error"]
    assert client.http_get("/healthz").status_code == 200
