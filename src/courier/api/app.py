"""The Falcon app factory: routes, middleware and error handling, nothing global."""

from __future__ import annotations

from typing import Any

import falcon
from celery import Celery

from courier import service
from courier.api.errors import install_error_handling
from courier.api.health import LivenessResource, ReadinessResource, VersionResource
from courier.api.jobs import JobCollectionResource, JobResource, TaskCatalogResource
from courier.api.middleware import AccessLogMiddleware, BearerAuthMiddleware, RequestIdMiddleware
from courier.api.openapi import OpenApiResource
from courier.catalog import catalog
from courier.config import Settings
from courier.jobs import Jobs


class Routes:
    """Adds routes to the app and remembers them, so the OpenAPI document lists every one."""

    def __init__(self, app: falcon.App[Any, Any]) -> None:
        self.app = app
        self.resources: dict[str, Any] = {}

    def add(self, path: str, resource: Any) -> None:
        self.app.add_route(path, resource)
        self.resources[path] = resource


def create_app(settings: Settings, celery: Celery) -> falcon.App[Any, Any]:
    middleware: list[Any] = [
        RequestIdMiddleware(),
        AccessLogMiddleware(),
        BearerAuthMiddleware(settings.api_tokens),
    ]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    install_error_handling(app)

    celery.loader.import_default_modules()  # registers the public tasks of service.TASK_MODULES
    public_tasks = catalog()
    jobs = Jobs(celery)
    routes = Routes(app)
    routes.add("/healthz", LivenessResource())
    routes.add("/readyz", ReadinessResource(celery, settings.broker_connect_timeout))
    routes.add("/version", VersionResource())
    routes.add("/v1/tasks", TaskCatalogResource(public_tasks))
    routes.add("/v1/jobs", JobCollectionResource(jobs, public_tasks, settings.max_body_bytes))
    routes.add("/v1/jobs/{job_id}", JobResource(jobs))
    service.add_routes(routes, settings, celery)
    routes.add("/openapi.json", OpenApiResource(routes.resources))
    return app
