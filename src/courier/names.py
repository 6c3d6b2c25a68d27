"""Names that travel between courier's processes: headers and result-backend keys."""

from __future__ import annotations

from typing import Final

# RFC 9457's media type: every error the API answers, from Falcon or from the server below it.
PROBLEM_JSON: Final = "application/problem+json"
# The HTTP header carrying a request's id, and the task message header it travels in.
REQUEST_ID_HTTP_HEADER: Final = "X-Request-ID"
REQUEST_ID_HEADER: Final = "request_id"


def backend_key(name: str) -> bytes:
    """A key for courier's own records in the result backend (Redis and file backends take
    bytes)."""
    return f"courier-{name}".encode()
