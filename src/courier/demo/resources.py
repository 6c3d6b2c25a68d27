"""Example business endpoint: when did beat's heartbeat last run?"""

from __future__ import annotations

import time
from typing import ClassVar

import falcon
from celery import Celery

from courier.api.jobs import unavailable
from courier.api.openapi import Operations, operation
from courier.demo.tasks import last_heartbeat
from courier.queue.dependencies import RESULT_BACKEND, Unavailable, describe


class HeartbeatResource:
    openapi: ClassVar[Operations] = {
        "get": operation(
            "When the periodic demo.heartbeat last ran",
            {
                "type": "object",
                "properties": {
                    "last_run": {"type": ["number", "null"]},
                    "age_seconds": {"type": ["number", "null"]},
                    "interval_seconds": {"type": "number"},
                },
            },
            errors=(503,),
        )
    }

    def __init__(self, celery: Celery, interval: float) -> None:
        self._celery = celery
        self._interval = interval

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            last_run = last_heartbeat(self._celery)
        except Exception as error:
            raise unavailable(Unavailable(RESULT_BACKEND, describe(error))) from error
        resp.media = {
            "last_run": last_run,
            "age_seconds": None if last_run is None else round(time.time() - last_run, 3),
            "interval_seconds": self._interval,
        }
