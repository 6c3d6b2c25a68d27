"""The Falcon app factory: the kit's routes and the plugin's, middleware and error handling."""

from __future__ import annotations

import functools
import json
from typing import Any

import falcon
import falcon.media

from courier.api.errors import install_error_handling
from courier.api.health import LivenessResource, ReadinessResource, VersionResource
from courier.api.jobs import JobCollectionResource, JobResource, TaskCatalogResource, Waiting
from courier.api.middleware import (
    AccessLogMiddleware,
    BearerAuthMiddleware,
    MetricsMiddleware,
    RequestIdMiddleware,
)
from courier.api.openapi import OpenApiResource
from courier.plugin import Plugin
from courier.queue.app import CourierCelery
from courier.queue.dependencies import Dependencies
from courier.queue.jobs import Jobs
from courier.settings import Settings


class Routes:
    """Adds routes to the app and remembers them, so the OpenAPI document lists every one."""

    def __init__(self, app: falcon.App[Any, Any]) -> None:
        self.app = app
        self.resources: dict[str, Any] = {}

    def add(self, path: str, resource: object) -> None:
        self.app.add_route(path, resource)
        self.resources[path] = resource


def create_app(settings: Settings, celery: CourierCelery, plugin: Plugin) -> falcon.App[Any, Any]:
    middleware: list[Any] = [
        RequestIdMiddleware(),
        AccessLogMiddleware(),
        MetricsMiddleware(celery.metrics),
        BearerAuthMiddleware(settings.api_tokens),
    ]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    # Only valid JSON goes out: NaN and Infinity are not JSON (the worker fails such results).
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(
        dumps=functools.partial(json.dumps, allow_nan=False)
    )
    install_error_handling(app)

    dependencies = Dependencies(celery)
    jobs = Jobs(celery, dependencies)
    routes = Routes(app)
    routes.add("/healthz", LivenessResource())
    routes.add("/readyz", ReadinessResource(dependencies))
    routes.add("/version", VersionResource())
    routes.add("/v1/tasks", TaskCatalogResource(celery.catalog))
    waiting = Waiting(settings.prefer_wait_max if jobs.can_wait else 0.0, settings.web_threads)
    routes.add(
        "/v1/jobs",
        JobCollectionResource(
            jobs, celery.catalog, celery.metrics, settings.max_body_bytes, waiting
        ),
    )
    routes.add("/v1/jobs/{job_id}", JobResource(jobs, waiting))
    if plugin.add_routes is not None:
        plugin.add_routes(routes, celery)
    routes.add("/openapi.json", OpenApiResource(routes.resources))
    return app


def load_app() -> falcon.App[Any, Any]:
    """The app from this process's environment, logging configured: what an entry module needs.
    A bad setting or plugin ends the process (exit code 78)."""
    from courier.boot import boot_or_exit
    from courier.logs import configure_logging
    from courier.queue.app import create_celery

    settings, plugin = boot_or_exit()
    configure_logging(settings)
    return create_app(settings, create_celery(settings, plugin), plugin)
