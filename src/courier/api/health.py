"""Liveness, readiness and version: open endpoints for orchestrators and operators."""

from __future__ import annotations

from typing import Any, ClassVar

import falcon

from courier.api.errors import Problem
from courier.api.openapi import Operations, operation
from courier.buildinfo import build_info
from courier.queue.dependencies import OK, Dependencies

_CHECKS_SCHEMA = {"type": "object", "additionalProperties": {"type": "string"}}


class LivenessResource:
    """The process answers HTTP. No broker call: a broker outage must not restart the API."""

    auth_required = False
    # Probed every few seconds by orchestrators and load balancers: a success is not logged.
    log_success = False
    openapi: ClassVar[Operations] = {
        "get": operation(
            "The API process is alive",
            {"type": "object", "properties": {"status": {"const": "ok"}}},
        )
    }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class ReadinessResource:
    """200 when the broker and the result backend answer and take writes, else 503 naming what
    failed and why (each change of state is logged once, by `Dependencies`)."""

    auth_required = False
    log_success = False
    openapi: ClassVar[Operations] = {
        "get": operation(
            "Broker and result backend answer",
            {
                "type": "object",
                "properties": {"status": {"const": "ready"}, "checks": _CHECKS_SCHEMA},
            },
            errors=(503,),
        )
    }

    def __init__(self, dependencies: Dependencies) -> None:
        self._dependencies = dependencies

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = dict(self._dependencies.check())
        failed = [
            f"{name.replace('_', ' ')} {state}" for name, state in checks.items() if state != OK
        ]
        if failed:
            raise Problem(
                falcon.HTTP_503,
                "Service Unavailable",
                f"Not ready: {'; '.join(failed)}.",
                headers={"Retry-After": "5"},
                checks=checks,
            )
        resp.media = {"status": "ready", "checks": checks}


class VersionResource:
    auth_required = False
    openapi: ClassVar[Operations] = {
        "get": operation(
            "Version, commit and build date",
            {
                "type": "object",
                "properties": {
                    "version": {"type": "string"},
                    "commit": {"type": "string"},
                    "build_date": {"type": "string"},
                },
            },
        )
    }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        info: dict[str, Any] = build_info().as_dict()
        resp.media = info
