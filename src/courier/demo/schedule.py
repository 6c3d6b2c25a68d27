"""The demo's periodic jobs, kept apart from the tasks so the Celery app can read it at start-up."""

from __future__ import annotations

from typing import Any

from courier.config import Settings


def heartbeat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "demo.heartbeat": {
            "task": "demo.heartbeat",
            "schedule": settings.heartbeat_interval,
            # A heartbeat older than its interval is useless: let it expire in the queue.
            "options": {"expires": max(1.0, settings.heartbeat_interval)},
        }
    }
