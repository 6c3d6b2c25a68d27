"""Celery's Redis result backend, without a subscription per submitted job.

Celery's backend subscribes to a job's result channel as soon as the job is sent, in case the
sender waits for it. The API never waits through Celery's result consumer (`Prefer: wait`
subscribes for itself), so those subscriptions cost a Redis round trip per submission and, left
undrained, piled up on the connection. Waiting with `AsyncResult.get()` still works: it
subscribes when it starts waiting.
"""

from __future__ import annotations

from typing import Any

from celery.app.backends import BACKEND_ALIASES
from celery.backends import redis as celery_redis


class RedisBackend(celery_redis.RedisBackend):
    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Nothing: no subscription until someone waits for the result."""


def install() -> None:
    """Make `redis://` and `rediss://` result backend URLs use this backend."""
    for scheme in ("redis", "rediss"):
        BACKEND_ALIASES[scheme] = f"{__name__}:RedisBackend"
