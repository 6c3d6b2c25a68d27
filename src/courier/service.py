"""Where the business code plugs into the kit: the one module a forking team edits (together with
replacing `courier.demo`). Everything else in `courier` is machinery to keep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from courier.config import Settings

if TYPE_CHECKING:
    from celery import Celery

    from courier.api.app import Routes

# Modules that define Celery tasks; imported by the worker and the API.
TASK_MODULES: tuple[str, ...] = ("courier.demo.tasks",)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Periodic jobs that beat puts on the queue."""
    from courier.demo.schedule import heartbeat_schedule

    return heartbeat_schedule(settings)


def add_routes(routes: Routes, settings: Settings, celery: Celery) -> None:
    """Business endpoints beside the kit's /v1/jobs and /v1/tasks."""
    from courier.demo.resources import add_demo_routes

    add_demo_routes(routes, settings, celery)
