"""Names that travel between courier's processes: headers, environment variables and
result-backend keys."""

from __future__ import annotations

from typing import Final

# RFC 9457's media type: every error the API answers, from Falcon or from the server below it.
PROBLEM_JSON: Final = "application/problem+json"
# The HTTP header carrying a request's id, and the task message header it travels in.
REQUEST_ID_HTTP_HEADER: Final = "X-Request-ID"
REQUEST_ID_HEADER: Final = "request_id"
# The task message header stamped with the time a job was queued (the protocol has no such
# field): the age of the oldest waiting job.
QUEUED_AT_HEADER: Final = "courier_queued_at"
# Where every process of a container writes its metric files (prometheus-client's multiprocess
# mode reads it once, at import).
METRICS_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


def backend_key(name: str) -> bytes:
    """A key for courier's own records in the result backend (Redis and file backends take
    bytes)."""
    return f"courier-{name}".encode()
