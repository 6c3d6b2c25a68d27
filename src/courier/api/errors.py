"""Errors as RFC 9457 problem details (`application/problem+json`), for every status.

Falcon raises `HTTPError`s for routing, media and auth failures; resources raise `Problem` when
they have more to say (which argument is wrong, which dependency is down). Anything unexpected
is logged with its traceback and answered as a plain 500 problem that reveals nothing.
"""

from __future__ import annotations

import json
from typing import Any

import falcon

from courier.logs import get_logger
from courier.names import PROBLEM_JSON

log = get_logger("courier.api")


class Problem(falcon.HTTPError):
    """An HTTP error with extra problem members (e.g. `errors`, `checks`)."""

    def __init__(
        self,
        status: str | int,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **members: Any,
    ) -> None:
        super().__init__(status, title=title, description=detail, headers=headers)
        self.members = members


def serialize_problem(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": error.title,
        "status": error.status_code,
        "detail": error.description or error.title,
        "instance": req.path,
    }
    body.update(getattr(error, "members", {}))
    resp.content_type = PROBLEM_JSON
    resp.data = json.dumps(body).encode()


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    log.exception("unhandled error", path=req.path, method=req.method)
    raise falcon.HTTPInternalServerError(
        title="Internal Server Error", description="The server failed to answer this request."
    )


def install_error_handling(app: falcon.App[Any, Any]) -> None:
    app.set_error_serializer(serialize_problem)
    app.add_error_handler(Exception, handle_unexpected)
