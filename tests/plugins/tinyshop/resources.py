"""tinyshop's one HTTP resource: how many restock runs the worker did."""

from __future__ import annotations

from typing import ClassVar

import falcon
from celery import Celery

from courier.api.openapi import Operations, operation
from courier.plugin import RouteTable

from .tasks import restocks


class RestocksResource:
    openapi: ClassVar[Operations] = {
        "get": operation(
            "How many restock runs the worker did",
            {"type": "object", "properties": {"restocks": {"type": "integer"}}},
        )
    }

    def __init__(self, celery: Celery) -> None:
        self._celery = celery

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"restocks": restocks(self._celery)}


def add_routes(routes: RouteTable, celery: Celery) -> None:
    routes.add("/v1/tinyshop/restocks", RestocksResource(celery))
