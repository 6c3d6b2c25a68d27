"""Liveness, readiness and version: open endpoints for orchestrators and operators."""

from __future__ import annotations

from typing import Any, ClassVar

import falcon
from celery import Celery

from courier.api.errors import Problem
from courier.api.openapi import Operations, operation
from courier.buildinfo import build_info
from courier.logs import get_logger
from courier.names import backend_key

log = get_logger("courier.api.health")

_CHECKS_SCHEMA = {"type": "object", "additionalProperties": {"type": "string"}}


class LivenessResource:
    """The process answers HTTP. No broker call: a broker outage must not restart the API."""

    auth_required = False
    openapi: ClassVar[Operations] = {
        "get": operation(
            "The API process is alive",
            {"type": "object", "properties": {"status": {"const": "ok"}}},
        )
    }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class ReadinessResource:
    """200 when the broker and the result backend answer, else 503 naming what failed."""

    auth_required = False
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

    def __init__(self, celery: Celery, timeout: float) -> None:
        self._celery = celery
        self._timeout = timeout

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {
            "broker": "ok" if self._broker_answers() else "unreachable",
            "result_backend": "ok" if self._backend_answers() else "unreachable",
        }
        failed = [name for name, state in checks.items() if state != "ok"]
        if failed:
            raise Problem(
                falcon.HTTP_503,
                "Service Unavailable",
                f"Not ready: {', '.join(failed)} unreachable.",
                headers={"Retry-After": "5"},
                checks=checks,
            )
        resp.media = {"status": "ready", "checks": checks}

    def _broker_answers(self) -> bool:
        try:
            with self._celery.connection_for_write() as connection:
                connection.ensure_connection(
                    max_retries=1, interval_start=0, interval_step=0, timeout=self._timeout
                )
        except Exception as error:
            log.warning("broker check failed", error=type(error).__name__)
            return False
        return True

    def _backend_answers(self) -> bool:
        try:
            self._celery.backend.get(backend_key("readiness-probe"))
        except Exception as error:
            log.warning("result backend check failed", error=type(error).__name__)
            return False
        return True


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
