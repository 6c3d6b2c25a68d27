"""Running one role in this process: the API server, a worker or beat.

A single-role container runs its role in the entrypoint's own process (PID 1 receives SIGTERM
itself); `MODE=all` runs each role in a child forked by the supervisor.
"""

from __future__ import annotations

from typing import Final

from courier.plugin import Plugin
from courier.settings import Settings

ROLES: Final = ("api", "worker", "beat")


def run_role(role: str, settings: Settings, plugin: Plugin) -> int:
    """Run `role` until it stops; its exit code."""
    if role == "api":
        from courier.api.server import serve

        return serve(settings, plugin)
    from courier.queue import roles
    from courier.queue.app import create_celery

    return roles.run(role, create_celery(settings, plugin))
