"""Where an HTTP/1.1 request ends, found from the bytes received so far, before it is parsed.

The API's worker reads each request whole (head, then a Content-Length or chunked body) in its
event loop, so a slow or idle client holds a buffer, never a thread. `RequestScanner` tells it
when the request is complete. It checks only the framing: whatever it does not understand it
calls complete, and gunicorn's parser then rejects those bytes with the precise error. Its
verdicts never wait for bytes that gunicorn's parser would not need, and never stop before
bytes it would.

The scanner keeps its position, so feeding it a growing buffer costs time linear in the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from gunicorn.http.body import CHUNK_EXT_RE

Buffer = bytes | bytearray
Step = Callable[[Buffer], bool]

CRLF = b"\r\n"
_BARE_LF = re.compile(rb"(?<!\r)\n")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_DIGITS = re.compile(rb"[0-9]+")
# What gunicorn requires of a request line at the least (RFC 9110 token, RFC 3986 characters).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_MAX_SIZE_DIGITS = 15  # more than this (without leading zeros) is beyond any body limit


def _plausible_request_line(line: bytes) -> bool:
    """Whether gunicorn might accept it (what it surely refuses, it refuses at once)."""
    parts = line.split(b" ", 2)
    return (
        len(parts) == 3
        and _TOKEN.fullmatch(parts[0]) is not None
        and _TARGET.fullmatch(parts[1]) is not None
        and _VERSION.fullmatch(parts[2]) is not None
    )


class ContentTooLarge(Exception):
    """The body is (or declares itself) larger than the limit: 413."""


class HeadTooLarge(Exception):
    """The request line and headers (or a chunked body's trailers) exceed their limit: 431."""


@dataclass(frozen=True)
class Limits:
    request_line: int  # gunicorn's limit_request_line: longer is its 414
    head: int  # request line and headers together (and trailers): larger is 431
    body: int  # decoded body bytes: more is 413
    chunk_line: int = 8190  # gunicorn's longest chunk-size line

    @property
    def chunked_overhead(self) -> int:
        """Framing bytes a chunked body may add to its data (sizes, extensions, CRLFs)."""
        return self.body + 4096


class Progress(Enum):
    HEAD = "reading the head"
    BODY = "reading the body"
    WHOLE = "complete"


class RequestScanner:
    """Feed `scan()` the bytes received for one request (growing); it answers `Progress`."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.progress = Progress.HEAD
        self.end = 0  # with WHOLE: the offset just past the request (or where it goes wrong)
        self.head_end = 0
        self.expects_continue = False  # an HTTP/1.1 `Expect: 100-continue` with a body to come
        self._start = 0  # the request line's first byte (after one optional empty line)
        self._line_end = -1  # the request line's CRLF, once it came and looked valid
        self._searched = 0  # bytes already searched for the current terminator
        self._step: Step = self._head
        self._remaining = 0  # Content-Length bytes still to come
        self._body_start = 0
        self._data_bytes = 0  # decoded chunk data so far

    def scan(self, buffer: Buffer) -> Progress:
        """Where the request stands given everything received for it so far."""
        while self.progress is not Progress.WHOLE and self._step(buffer):
            pass
        return self.progress

    def _whole(self, end: int) -> bool:
        self.progress, self.end = Progress.WHOLE, end
        return False

    # -- the head ----------------------------------------------------------------------------------

    def _head(self, buffer: Buffer) -> bool:
        if self._start == 0:
            # RFC 9112 2.2 (and gunicorn): one empty line before the request line is ignored.
            if buffer[:1] == b"\r" and len(buffer) < 2:
                return False
            if buffer[:2] == CRLF:
                self._start = self._searched = 2
        start = self._start
        if self._line_end < 0:
            line_end = buffer.find(CRLF, start)
            # gunicorn's 414, as it decides it: on a line it has whole, or on 2 bytes more.
            if line_end - start > self.limits.request_line or (
                line_end < 0 and len(buffer) - start - 2 > self.limits.request_line
            ):
                return self._whole(len(buffer))
            if line_end >= 0:
                if not _plausible_request_line(bytes(buffer[start:line_end])):
                    return self._whole(line_end)  # gunicorn refuses it before the headers
                self._line_end = line_end
        searched_from = max(start, self._searched - 3)
        end = buffer.find(b"\r\n\r\n", searched_from)
        if _BARE_LF.search(buffer, searched_from, len(buffer) if end < 0 else end):
            return self._whole(len(buffer))  # gunicorn refuses a bare LF without waiting
        if end < 0:
            self._searched = len(buffer)
            if len(buffer) - start > self.limits.head:
                raise HeadTooLarge
            return False
        if end + 4 - start > self.limits.head:
            raise HeadTooLarge
        self.head_end = end + 4
        return self._framing(bytes(buffer[start:end]))

    def _framing(self, head: bytes) -> bool:
        """From the head's fields, how the body is framed; the next step."""
        request_line, *fields = head.split(CRLF)
        lengths: list[bytes] = []
        codings: list[bytes] = []
        expectations: list[bytes] = []
        for field in fields:
            name, colon, value = field.partition(b":")
            if not colon:
                continue  # malformed: gunicorn refuses it
            name, value = name.lower(), value.strip(b" \t")
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings += [coding.strip(b" \t").lower() for coding in value.split(b",")]
            elif name == b"expect":
                expectations.append(value.lower())
        http11 = request_line.endswith(b" HTTP/1.1")
        if any(expectation != b"100-continue" for expectation in expectations):
            return self._whole(self.head_end)  # gunicorn answers 417 at once
        self.expects_continue = bool(expectations) and http11
        if codings:
            if lengths or not http11 or codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
                return self._whole(self.head_end)  # gunicorn answers 400 or 501
            return self._body(self._chunk_line)
        if not lengths:
            return self._whole(self.head_end)  # no body
        if len(lengths) > 1 or not _DIGITS.fullmatch(lengths[0]):
            return self._whole(self.head_end)  # gunicorn answers 400
        digits = lengths[0].lstrip(b"0")
        if len(digits) > _MAX_SIZE_DIGITS or int(digits or b"0") > self.limits.body:
            raise ContentTooLarge
        self._remaining = int(digits or b"0")
        if self._remaining == 0:
            return self._whole(self.head_end)
        return self._body(self._length)

    def _body(self, step: Step) -> bool:
        self.progress = Progress.BODY
        self._body_start = self._searched = self.head_end
        self._step = step
        return True

    # -- a Content-Length body ---------------------------------------------------------------------

    def _length(self, buffer: Buffer) -> bool:
        if len(buffer) - self.head_end >= self._remaining:
            return self._whole(self.head_end + self._remaining)
        return False

    # -- a chunked body ----------------------------------------------------------------------------

    def _chunk_line(self, buffer: Buffer) -> bool:
        position = self._searched
        line_end = buffer.find(CRLF, position)
        if line_end < 0:
            if len(buffer) - position > self.limits.chunk_line:
                return self._whole(len(buffer))  # gunicorn: invalid chunk size
            self._check_overhead(buffer)
            return False
        size_text, semicolon, extension = bytes(buffer[position:line_end]).partition(b";")
        if semicolon:
            size_text = size_text.rstrip(b" \t")
        if (
            not _HEX.fullmatch(size_text)
            or b"\r" in extension
            or (semicolon and not CHUNK_EXT_RE.fullmatch(b";" + extension))
        ):
            return self._whole(line_end)  # gunicorn: invalid chunk size or extension
        digits = size_text.lstrip(b"0")
        if len(digits) > _MAX_SIZE_DIGITS:
            raise ContentTooLarge
        size = int(digits or b"0", 16)
        self._searched = line_end + 2
        if size == 0:
            self._step = self._trailers
            return True
        self._data_bytes += size
        if self._data_bytes > self.limits.body:
            raise ContentTooLarge
        self._remaining = size
        self._step = self._chunk_data
        return True

    def _chunk_data(self, buffer: Buffer) -> bool:
        data_end = self._searched + self._remaining
        terminator = buffer[data_end : data_end + 2]
        if not CRLF.startswith(terminator):
            return self._whole(len(buffer))  # gunicorn: chunk missing its terminator
        if len(terminator) < 2:
            self._check_overhead(buffer)
            return False
        self._searched = data_end + 2
        self._step = self._chunk_line
        return True

    def _trailers(self, buffer: Buffer) -> bool:
        position = self._searched
        if len(buffer) - position < 2:
            return False
        if buffer[position : position + 2] == CRLF:
            return self._whole(position + 2)
        end = buffer.find(b"\r\n\r\n", position)
        if end >= 0:
            return self._whole(end + 4)
        if _BARE_LF.search(buffer, position):
            return self._whole(len(buffer))  # gunicorn refuses it without waiting
        if len(buffer) - position > self.limits.head:
            raise HeadTooLarge
        return False

    def _check_overhead(self, buffer: Buffer) -> None:
        if len(buffer) - self._body_start - self._data_bytes > self.limits.chunked_overhead:
            raise ContentTooLarge
