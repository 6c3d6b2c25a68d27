"""A chunked body that reaches the app malformed (under a WSGI server that hands the app its
framing errors, as gunicorn's own workers do): 400, never 500. The body stream is gunicorn's
real chunked reader over the bytes a client sent."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from falcon import testing
from gunicorn.http.body import Body, ChunkedReader
from gunicorn.http.unreader import IterUnreader

from courier.settings import Settings
from tests.unit.conftest import AUTH, message_files
from tests.unit.test_api import assert_problem

CHUNKED = {**AUTH, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}


def gunicorn_chunked_stream(wire: bytes) -> Body:
    """wsgi.input as gunicorn gives it for a chunked request whose body is `wire`."""
    return Body(ChunkedReader(SimpleNamespace(), IterUnreader([wire])))


def post_chunked(client: testing.TestClient, wire: bytes) -> testing.Result:
    return client.simulate_post(
        "/v1/jobs", headers=CHUNKED, extras={"wsgi.input": gunicorn_chunked_stream(wire)}
    )


@pytest.mark.parametrize(
    "wire",
    [
        b"zz\r\n{}\r\n0\r\n\r\n",  # chunk size not hexadecimal
        b"2\r\n{}XX0\r\n\r\n",  # chunk not terminated by CRLF
        b"2;\x01\r\n{}\r\n0\r\n\r\n",  # invalid chunk extension
        b'20\r\n{"task": "demo.add"',  # cut off inside a chunk
        b"2\r\n{}\r\n0\r\nContent-Length: 5\r\n\r\n",  # a trailer that may not be one
    ],
    ids=["size", "terminator", "extension", "truncated", "forbidden trailer"],
)
def test_a_malformed_chunked_body_is_400(
    client: testing.TestClient, embedded: tuple[Settings, object], wire: bytes
) -> None:
    problem = assert_problem(post_chunked(client, wire), 400)
    assert problem["title"] == "Malformed Body"
    settings, _ = embedded
    assert message_files(settings) == []


def test_a_well_formed_chunked_body_is_read(client: testing.TestClient) -> None:
    body = b'{"task": "demo.add", "args": {"a": 1, "b": 2}}'
    wire = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:]))
    assert post_chunked(client, wire + b"0\r\n\r\n").status_code == 202
