"""The API worker's request pre-reading (`courier.api.framing`): when a request is complete,
checked on every prefix of each request against gunicorn's own parser, and its limits; and the
problem responses the worker writes itself."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from gunicorn.config import Config
from gunicorn.http import errors as http_errors
from gunicorn.http.parser import RequestParser

from courier.api.buffering import (
    IncompleteRequest,
    ReadLimits,
    RequestTimeout,
    describe,
    problem_response,
)
from courier.api.framing import ContentTooLarge, HeadTooLarge, Limits, Progress, RequestScanner

LIMITS = Limits(request_line=4094, head=65536, body=10_000)
SMALL = Limits(request_line=4094, head=65536, body=1000)
Verdict = Literal["more", "done", "refused"]


def scan(data: bytes, limits: Limits = LIMITS) -> RequestScanner:
    scanner = RequestScanner(limits)
    scanner.scan(data)
    return scanner


def scan_growing(data: bytes, step: int = 1, limits: Limits = LIMITS) -> RequestScanner:
    """Feed `data` as it would arrive, `step` bytes at a time, to one scanner."""
    scanner = RequestScanner(limits)
    buffer = bytearray()
    for start in range(0, len(data), step):
        buffer += data[start : start + step]
        if scanner.scan(buffer) is Progress.WHOLE:
            break
    return scanner


def gunicorn_needs_more(data: bytes) -> Verdict:
    """Would gunicorn's parser, given only `data`, need more bytes to parse the request and
    read its whole body ("more"), or does it finish or fail on these bytes alone ("done")?"""
    parser = RequestParser(Config(), iter([data]), ("127.0.0.1", 1))
    try:
        request = next(parser)
        body = request.body.read()
    except (StopIteration, http_errors.NoMoreData):
        return "more"
    except http_errors.ChunkMissingTerminator as error:
        # At the end of the bytes gunicorn reports a terminator it has only part of.
        return "more" if b"\r\n".startswith(bytes(error.term)) else "done"
    except http_errors.ParseException:
        return "done"
    # A Content-Length body cut short reads short, without an error.
    declared = [int(value) for name, value in request.headers if name == "CONTENT-LENGTH"]
    return "more" if declared and len(body) < declared[0] else "done"


def scanner_verdict(data: bytes) -> Verdict:
    try:
        return "done" if scan(data).progress is Progress.WHOLE else "more"
    except (ContentTooLarge, HeadTooLarge):
        return "refused"  # answered by the worker itself


def chunked(*chunks: bytes, trailers: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    return body + b"0\r\n" + trailers + b"\r\n"


POST_HEAD = b"POST /v1/jobs HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
CHUNKED_HEAD = POST_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"

# Complete requests gunicorn accepts, each exactly one request long.
VALID = {
    "GET": b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n",
    "GET, no headers": b"GET / HTTP/1.1\r\n\r\n",
    "HTTP/1.0": b"GET /healthz HTTP/1.0\r\n\r\n",
    "an empty line first": b"\r\nGET / HTTP/1.1\r\nHost: api\r\n\r\n",
    "Content-Length": POST_HEAD + b'Content-Length: 7\r\n\r\n{"a":1}',
    "Content-Length 0": POST_HEAD + b"Content-Length: 0\r\n\r\n",
    "Content-Length, leading zeros": POST_HEAD + b"Content-Length: 0002\r\n\r\n{}",
    "lower-case names": b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}",
    "body with CRLFs": POST_HEAD + b"Content-Length: 8\r\n\r\n\r\n\r\n\r\n\r\n",
    "chunked": CHUNKED_HEAD + chunked(b'{"a"', b":1}"),
    "chunked, CRLF in data": CHUNKED_HEAD + chunked(b"\r\n\r\n", b"0\r\n\r\n"),
    "chunked, upper-case hex": CHUNKED_HEAD + b"A\r\n0123456789\r\n0\r\n\r\n",
    "chunked, an extension": CHUNKED_HEAD + b"2;name=value\r\n{}\r\n0\r\n\r\n",
    "chunked, trailers": CHUNKED_HEAD + chunked(b"{}", trailers=b"X-Sum: 1\r\nX-B: 2\r\n"),
    "chunked, empty": CHUNKED_HEAD + chunked(),
    "gzip, chunked": POST_HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked(b"x"),
    "Expect: 100-continue": POST_HEAD + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
}

# Requests gunicorn refuses; the scanner must hand each over once gunicorn can tell.
MALFORMED = {
    "not a request line": b"GARBAGE\r\n\r\n",
    "bare LF request": b"GET / HTTP/1.1\nHost: api\n\n",
    "bare LF in a header": b"GET / HTTP/1.1\r\nHost: api\nX: y\r\n\r\n",
    "request line too long": b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n",
    "request line too long, unterminated": b"GET /" + b"a" * 5000,
    "no colon": b"GET / HTTP/1.1\r\nHost api\r\n\r\n",
    "Expect: something else": POST_HEAD + b"Expect: magic\r\nContent-Length: 2\r\n\r\n{}",
    "xchunked": POST_HEAD + b"Transfer-Encoding: xchunked\r\n\r\n",
    "chunked, then gzip": POST_HEAD + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
    "chunked twice": POST_HEAD + b"Transfer-Encoding: chunked, chunked\r\n\r\n",
    "chunked on HTTP/1.0": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(),
    "Content-Length and chunked": CHUNKED_HEAD[:-2] + b"Content-Length: 2\r\n\r\n{}",
    "two Content-Lengths": POST_HEAD + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    "Content-Length not a number": POST_HEAD + b"Content-Length: 2x\r\n\r\n{}",
    "Content-Length negative": POST_HEAD + b"Content-Length: -2\r\n\r\n{}",
    "chunk size not hex": CHUNKED_HEAD + b"zz\r\n{}\r\n0\r\n\r\n",
    "chunk size empty": CHUNKED_HEAD + b"\r\n{}\r\n0\r\n\r\n",
    "chunk size with a space": CHUNKED_HEAD + b"2 \r\n{}\r\n0\r\n\r\n",
    "chunk without CRLF": CHUNKED_HEAD + b"2\r\n{}XX0\r\n\r\n",
    "chunk data too long": CHUNKED_HEAD + b"2\r\n{}}\r\n0\r\n\r\n",
    "bad chunk extension": CHUNKED_HEAD + b"2;\x01\r\n{}\r\n0\r\n\r\n",
    "chunk-size line too long": CHUNKED_HEAD + b"2;" + b"a" * 9000,
    "bare LF in trailers": CHUNKED_HEAD + b"0\r\nX: y\nZ: w\r\n\r\n",
    "forbidden trailer": CHUNKED_HEAD + b"0\r\nContent-Length: 2\r\n\r\n",
}


def cuts(length: int) -> list[int]:
    """Where to cut a request of `length` bytes: everywhere when short; else every 7th byte,
    and every byte near the limits (a request line, a chunk-size line) and the end."""
    if length <= 1000:
        return list(range(length + 1))
    near = {
        origin + limit + offset
        for origin in (0, len(CHUNKED_HEAD))
        for limit in (LIMITS.request_line, LIMITS.chunk_line)
        for offset in range(-8, 9)
    }
    wanted = set(range(0, length, 7)) | set(range(length - 16, length + 1)) | near
    return sorted(cut for cut in wanted if 0 <= cut <= length)


@pytest.mark.parametrize("label", VALID)
def test_a_valid_request_is_whole_exactly_at_its_end(label: str) -> None:
    request = VALID[label]
    for cut in range(len(request)):
        assert scanner_verdict(request[:cut]) == "more", (label, cut)
    for step in (1, 3, len(request)):
        scanner = scan_growing(request, step)
        assert scanner.progress is Progress.WHOLE, (label, step)
        assert scanner.end == len(request), (label, step)
    assert gunicorn_needs_more(request) == "done"


@pytest.mark.parametrize("label", list(VALID) + list(MALFORMED))
def test_the_scanner_never_waits_for_bytes_gunicorn_does_not_need_nor_stops_before_it(
    label: str,
) -> None:
    """On every prefix, the scanner and gunicorn's parser agree whether more bytes are needed:
    a request handed over early would block (or lose) a thread, one held back would time out
    instead of getting its error."""
    request = VALID.get(label) or MALFORMED[label]
    for cut in cuts(len(request)):
        prefix = request[:cut]
        assert scanner_verdict(prefix) == gunicorn_needs_more(prefix), (label, cut, prefix[-40:])


@pytest.mark.parametrize("label", MALFORMED)
def test_a_malformed_request_is_handed_to_gunicorn_which_refuses_it(label: str) -> None:
    request = MALFORMED[label]
    assert scan(request).progress is Progress.WHOLE
    parser = RequestParser(Config(), iter([request]), ("127.0.0.1", 1))
    with pytest.raises(http_errors.ParseException):
        next(parser).body.read()


def test_pipelined_requests_end_where_the_first_one_does() -> None:
    first, second = VALID["Content-Length"], VALID["GET"]
    scanner = scan(first + second)
    assert scanner.progress is Progress.WHOLE
    assert scanner.end == len(first)
    chunked_first = VALID["chunked, trailers"]
    assert scan(chunked_first + second).end == len(chunked_first)


def test_the_head_then_the_body_is_reported_in_turn() -> None:
    head = POST_HEAD + b"Content-Length: 10\r\n\r\n"
    assert scan(head[:-1]).progress is Progress.HEAD
    scanner = scan(head + b"12345")
    assert scanner.progress is Progress.BODY
    assert scanner.head_end == len(head)
    assert not scanner.expects_continue
    assert scan(head + b"1234567890").progress is Progress.WHOLE


def test_expect_100_continue_is_noticed_only_with_a_body_to_come_on_http_1_1() -> None:
    waiting = POST_HEAD + b"Expect: 100-Continue\r\nContent-Length: 2\r\n\r\n"
    assert scan(waiting).expects_continue
    assert scan(CHUNKED_HEAD[:-2] + b"Expect: 100-continue\r\n\r\n").expects_continue
    http10 = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    assert not scan(http10).expects_continue


@pytest.mark.parametrize(
    "request_bytes",
    [
        POST_HEAD + b"Content-Length: 1001\r\n\r\n",
        POST_HEAD + b"Content-Length: 99999999999999999999999999999999\r\n\r\n",
        CHUNKED_HEAD + b"3e9\r\n",  # 1001 bytes declared by one chunk
        CHUNKED_HEAD + b"1f4\r\n" + b"x" * 500 + b"\r\n1f5\r\n",  # 500 + 501
        CHUNKED_HEAD + b"f" * 40 + b"\r\n",
    ],
    ids=["Content-Length", "a huge Content-Length", "one chunk", "two chunks", "huge chunk"],
)
def test_a_body_over_the_limit_is_refused_before_it_is_read(request_bytes: bytes) -> None:
    with pytest.raises(ContentTooLarge):
        scan(request_bytes, SMALL)


def test_a_body_exactly_at_the_limit_is_accepted() -> None:
    exact = POST_HEAD + b"Content-Length: 1000\r\n\r\n" + b"x" * 1000
    assert scan(exact, SMALL).end == len(exact)
    chunks = CHUNKED_HEAD + chunked(b"x" * 600, b"y" * 400)
    assert scan(chunks, SMALL).end == len(chunks)


def test_chunk_framing_cannot_grow_without_bound() -> None:
    """Many one-byte chunks with long extensions: the framing around 1000 data bytes is
    bounded too."""
    chunk = b"1;" + b"e" * 100 + b"\r\nx\r\n"
    with pytest.raises(ContentTooLarge):
        scan_growing(CHUNKED_HEAD + chunk * 60, step=len(chunk), limits=SMALL)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 70000,
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 8000) for i in range(9)),
        CHUNKED_HEAD + b"0\r\n" + b"X: " + b"a" * 70000,
    ],
    ids=["one endless header", "the head over 64 KiB", "endless trailers"],
)
def test_a_head_or_trailers_over_the_limit_is_refused(request_bytes: bytes) -> None:
    with pytest.raises(HeadTooLarge):
        scan(request_bytes)


def test_scanning_a_growing_buffer_resumes_where_it_stopped() -> None:
    """A body sent a byte at a time is scanned in time linear in its size (the scanner keeps
    its place): 20 000 one-byte chunks finish promptly."""
    limits = Limits(request_line=4094, head=65536, body=100_000)
    request = CHUNKED_HEAD + b"1\r\nx\r\n" * 20_000 + b"0\r\n\r\n"
    scanner = scan_growing(request, step=1, limits=limits)
    assert scanner.progress is Progress.WHOLE
    assert scanner.end == len(request)


# -- the problems the worker answers itself ------------------------------------------------------

READ_LIMITS = ReadLimits(header_timeout=10, body_timeout=30, max_body=65536)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RequestTimeout(), 408),
        (IncompleteRequest(), 400),
        (ContentTooLarge(), 413),
        (HeadTooLarge(), 431),
        (http_errors.LimitRequestHeaders("limit request headers fields"), 431),
        (http_errors.LimitRequestLine(5000, 4094), 414),
        (http_errors.ExpectationFailed("magic"), 417),
        (http_errors.UnsupportedTransferCoding("xchunked"), 501),
        (http_errors.InvalidChunkSize(b"zz"), 400),
        (http_errors.ChunkMissingTerminator(b"XX"), 400),
        (http_errors.InvalidRequestLine("GARBAGE Bearer secret-token"), 400),
        (http_errors.InvalidHeader("Authorization Bearer secret-token"), 400),
        (http_errors.InvalidHeader("CONTENT-LENGTH"), 400),
        (http_errors.InvalidHeaderName("x y"), 400),
        (http_errors.ConfigurationProblem("bad"), 500),
        (RuntimeError("internal detail"), 500),
    ],
)
def test_each_server_error_is_a_problem_document_that_quotes_nothing(
    error: Exception, status: int
) -> None:
    code, detail = describe(error, READ_LIMITS, LIMITS)
    assert code == status
    raw = problem_response(code, detail)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} ")
    assert "Content-Type: application/problem+json" in lines
    assert "Connection: close" in lines
    assert f"Content-Length: {len(body)}" in lines
    document = json.loads(body)
    assert set(document) == {"type", "title", "status", "detail"}
    assert document["status"] == status
    assert document["type"] == "about:blank"
    assert document["title"] == lines[0].split(" ", 2)[2]
    for quoted in ("secret-token", "GARBAGE", "xchunked", "magic", "internal detail", "zz"):
        assert quoted not in document["detail"]


def test_titles_are_rfc_9110_reason_phrases() -> None:
    assert b"413 Content Too Large" in problem_response(413, "x")
    assert b"414 URI Too Long" in problem_response(414, "x")
