"""The OpenAPI 3.1 document, assembled from the routes: each resource documents its own
operations in an `openapi` mapping (method -> operation), built with `operation()` below."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import falcon

from courier.api.errors import PROBLEM_JSON
from courier.buildinfo import build_info

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
    public: bool = False,
    request_schema: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(ok_status): {
            "description": summary,
            "content": {"application/json": {"schema": ok_schema}},
        }
    }
    for status in sorted({*errors, *(() if public else (401,))}):
        responses[str(status)] = {
            "description": _REASONS.get(status) or HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if public:
        op["security"] = []
    if request_schema is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": request_schema}},
        }
    if parameters:
        op["parameters"] = parameters
    return op


def build_document(routes: Mapping[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, resource in routes.items():
        operations = getattr(resource, "openapi", None)
        if operations:
            paths[path] = dict(operations)
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


class OpenApiResource:
    auth_required = False
    openapi: ClassVar[Operations] = {
        "get": operation("This OpenAPI document", {"type": "object"}, public=True),
    }

    def __init__(self, routes: Mapping[str, Any]) -> None:
        self._routes = routes

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = build_document(self._routes)
