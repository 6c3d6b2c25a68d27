"""Celery's Redis result backend, without a subscription per submitted job, and with plain
reads and writes for courier's own records.

Celery's backend subscribes to a job's result channel as soon as the job is sent, in case the
sender waits for it. The API never waits through Celery's result consumer (`Prefer: wait`
subscribes for itself), so those subscriptions cost a Redis round trip per submission and, left
undrained, piled up on the connection. Waiting with `AsyncResult.get()` still works: it
subscribes when it starts waiting.

Celery's `set` writes a key in a transaction with a publish on its channel, which only results
need (the waiting requests listen there); a record is one plain `SET`, and a record is read with
its job's result in one `MGET`. `set_record` and `record_and_meta` do the same on any backend (the
embedded file backend too).
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.app.backends import BACKEND_ALIASES
from celery.backends import redis as celery_redis


class RedisBackend(celery_redis.RedisBackend):
    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Nothing: no subscription until someone waits for the result."""

    def set_record(self, key: bytes, value: str) -> None:
        """One `SET`, expiring with the results."""
        self.client.set(key, value, ex=self.expires)

    def get_record_and_meta(self, key: bytes, task_id: str) -> tuple[Any, dict[str, Any]]:
        """A record and the meta of the job `task_id` (PENDING when it has none), in one round
        trip."""
        record, meta = self.client.mget(key, self.get_key_for_task(task_id))
        if not meta:
            return record, {"status": states.PENDING, "result": None}
        return record, dict(self.decode_result(meta))


def install() -> None:
    """Make `redis://` and `rediss://` result backend URLs use this backend."""
    for scheme in ("redis", "rediss"):
        BACKEND_ALIASES[scheme] = f"{__name__}:RedisBackend"


def set_record(backend: Any, key: bytes, value: str) -> None:
    """One of courier's own records in the result backend, expiring with the results."""
    if isinstance(backend, RedisBackend):
        backend.set_record(key, value)
    else:
        backend.set(key, value)


def record_and_meta(backend: Any, key: bytes, task_id: str) -> tuple[Any, dict[str, Any]]:
    """A record (None when there is none) and the meta of the job `task_id`."""
    if isinstance(backend, RedisBackend):
        return backend.get_record_and_meta(key, task_id)
    record = backend.get(key)
    return record, (dict(backend.get_task_meta(task_id)) if record is not None else {})
