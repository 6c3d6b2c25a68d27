"""The demo as a courier plugin: what it gives the kit, built from its own settings."""

from __future__ import annotations

from collections.abc import Mapping

from celery import Celery

from courier.demo.settings import DemoSettings
from courier.plugin import Plugin, RouteTable
from courier.settings import load


def create_plugin(environ: Mapping[str, str]) -> Plugin:
    settings = load(DemoSettings, environ)

    def add_routes(routes: RouteTable, celery: Celery) -> None:
        # Imported here: the worker and beat load the plugin too, and never serve HTTP.
        from courier.demo.resources import HeartbeatResource

        routes.add("/v1/demo/heartbeat", HeartbeatResource(celery, settings.heartbeat_interval))

    return Plugin(
        name="demo",
        task_modules=("courier.demo.tasks",),
        periodic_jobs={
            "demo.heartbeat": {
                "task": "demo.heartbeat",
                "schedule": settings.heartbeat_interval,
                # A heartbeat older than its interval is useless: let it expire in the queue.
                "options": {"expires": max(1.0, settings.heartbeat_interval)},
            }
        },
        add_routes=add_routes,
    )
