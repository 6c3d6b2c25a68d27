"""The OpenAPI 3.1 document, assembled from the routes: each resource documents its own
operations in an `openapi` mapping (method -> operation), built with `operation()` below.

Whether an operation needs the bearer token is read from the resource's `auth_required`, the
attribute the auth middleware reads: one fact for both."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import falcon

from courier.buildinfo import build_info
from courier.names import PROBLEM_JSON

Operations = dict[str, dict[str, Any]]

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}

_REASONS = {
    400: "Malformed request",
    401: "Missing or invalid bearer token",
    404: "Not found",
    405: "Method not allowed",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Unknown task or invalid arguments",
    503: "Broker or result backend unavailable",
}


def operation(
    summary: str,
    ok_schema: dict[str, Any],
    *,
    ok_status: int = 200,
    errors: Iterable[int] = (),
    request_schema: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(ok_status): {
            "description": summary,
            "content": {"application/json": {"schema": ok_schema}},
        }
    }
    for status in sorted(errors):
        responses[str(status)] = problem_response(status)
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if request_schema is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": request_schema}},
        }
    if parameters:
        op["parameters"] = parameters
    return op


def problem_response(status: int) -> dict[str, Any]:
    return {
        "description": _REASONS.get(status) or HTTPStatus(status).phrase,
        "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
    }


def build_document(routes: Mapping[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, resource in routes.items():
        operations: Operations = getattr(resource, "openapi", None) or {}
        open_to_all = not getattr(resource, "auth_required", True)
        if operations:
            paths[path] = {
                method: _with_security(op, open_to_all) for method, op in operations.items()
            }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "courier",
            "version": build_info().version,
            "description": "Submit jobs to Celery workers and read their results.",
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
        "paths": paths,
    }


def _with_security(op: dict[str, Any], open_to_all: bool) -> dict[str, Any]:
    """An operation open to all (`security: []`), or one that answers 401 without a token."""
    if open_to_all:
        return {**op, "security": []}
    responses = dict(sorted({**op["responses"], "401": problem_response(401)}.items()))
    return {**op, "responses": responses}


class OpenApiResource:
    auth_required = False
    openapi: ClassVar[Operations] = {
        "get": operation("This OpenAPI document", {"type": "object"}),
    }

    def __init__(self, routes: Mapping[str, Any]) -> None:
        self._routes = routes

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = build_document(self._routes)
