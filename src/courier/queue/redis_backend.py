"""Celery's Redis result backend, without a subscription per submitted job, and with plain
reads and writes for courier's own records.

Celery's backend subscribes to a job's result channel as soon as the job is sent, in case the
sender waits for it. The API never waits through Celery's result consumer (`Prefer: wait`
subscribes for itself), so those subscriptions cost a Redis round trip per submission and, left
undrained, piled up on the connection. Waiting with `AsyncResult.get()` still works: it
subscribes when it starts waiting.

Celery's `set` writes a key in a transaction with a publish on its channel, which only results
need (the waiting requests listen there): `set_record` writes a record with one plain `SET`, and
`record_and_meta` reads it with its job's result in one `MGET` (on the embedded file backend, they
fall back to Celery's own calls).
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.app.backends import BACKEND_ALIASES
from celery.backends import redis as celery_redis


class RedisBackend(celery_redis.RedisBackend):
    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Nothing: no subscription until someone waits for the result."""


def install() -> None:
    """Make `redis://` and `rediss://` result backend URLs use this backend."""
    for scheme in ("redis", "rediss"):
        BACKEND_ALIASES[scheme] = f"{__name__}:RedisBackend"


def set_record(backend: Any, key: bytes, value: str) -> None:
    """One of courier's own records in the result backend, expiring with the results: in
    Redis, one plain `SET`."""
    if isinstance(backend, RedisBackend):
        backend.client.set(key, value, ex=backend.expires)
    else:
        backend.set(key, value)


def record_and_meta(backend: Any, key: bytes, task_id: str) -> tuple[Any, dict[str, Any]]:
    """A record (None when there is none) and the meta of the job `task_id`: in Redis, one
    `MGET` (PENDING when the job has no meta yet)."""
    if not isinstance(backend, RedisBackend):
        record = backend.get(key)
        return record, (dict(backend.get_task_meta(task_id)) if record is not None else {})
    record, meta = backend.client.mget(key, backend.get_key_for_task(task_id))
    if not meta:
        return record, {"status": states.PENDING, "result": None}
    return record, dict(backend.decode_result(meta))
