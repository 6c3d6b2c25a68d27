"""Middleware, one job each: the request id, the access log line, metrics, bearer-token auth."""

from __future__ import annotations

import hmac
import os
import re
import time
from typing import Any

import falcon
import structlog

from courier.logs import get_logger
from courier.metrics import Metrics
from courier.names import REQUEST_ID_HTTP_HEADER as REQUEST_ID_HEADER

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")

access_log = get_logger("courier.access")


class RequestIdMiddleware:
    """Accept a valid `X-Request-ID` or make one; bind it to every log line; echo it back."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        offered = req.get_header(REQUEST_ID_HEADER) or ""
        request_id = offered if _VALID_REQUEST_ID.match(offered) else os.urandom(16).hex()
        req.context.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        resp.set_header(REQUEST_ID_HEADER, req.context.request_id)
        structlog.contextvars.clear_contextvars()


class AccessLogMiddleware:
    """One line per request: method, path, status, duration (and the bound request id). A
    resource with `log_success = False` (the health probes) is logged only when it fails."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        if resp.status_code < 400 and not getattr(resource, "log_success", True):
            return
        duration_ms = (time.perf_counter() - req.context.started) * 1000
        access_log.info(
            "request",
            method=req.method,
            path=req.path,
            status=resp.status_code,
            duration_ms=round(duration_ms, 2),
        )


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """`courier_http_requests_total` and the latency histogram, by route template (never the
    raw path: ids would make a series per job), method and status."""

    def __init__(self, metrics: Metrics) -> None:
        self._requests = metrics.http_requests
        self._duration = metrics.http_duration
        # The labelled series, found once each (a handful: routes x methods x statuses).
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        took = time.perf_counter() - req.context.metrics_started
        route = req.uri_template or "(unmatched)"
        method = req.method if req.method in _METHODS else "OTHER"
        key = (route, method, resp.status_code)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                self._requests.labels(route, method, str(resp.status_code)),
                self._duration.labels(route, method),
            )
        requests, duration = series
        requests.inc()
        duration.observe(took)


class BearerAuthMiddleware:
    """Every resource needs `Authorization: Bearer <token>` unless it sets `auth_required = False`.

    Tokens are compared in constant time, against every configured token, and never logged.
    """

    def __init__(self, tokens: tuple[str, ...]) -> None:
        self._tokens = tuple(t.encode() for t in tokens)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        if resource is None or not getattr(resource, "auth_required", True):
            return
        scheme, _, offered = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not self._matches(offered.strip().encode()):
            raise falcon.HTTPUnauthorized(
                title="Unauthorized",
                description="Send a valid token as `Authorization: Bearer <token>`.",
                challenges=["Bearer"],
            )

    def _matches(self, offered: bytes) -> bool:
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(offered, token)
        return matched and bool(offered)
