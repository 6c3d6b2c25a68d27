"""A beat scheduler that sends only while it holds a Redis lock.

Run two beats by mistake (or on purpose, for failover) and each periodic job is still sent once:
the beat holding `courier:beat-lock` sends; the others stand by, keeping their entries marked as
just run so that a takeover starts a fresh interval instead of a burst of catch-up runs. The
holder renews the lock on every tick; if it dies, the lock expires after `BEAT_LOCK_TIMEOUT`
seconds and a standby takes over. Without a Redis URL (the embedded mode) it behaves exactly
like Celery's own `PersistentScheduler`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis
from celery.beat import PersistentScheduler
from redis.exceptions import LockError, RedisError

from courier.config import Settings
from courier.logs import get_logger

LOCK_NAME = "courier:beat-lock"

log = get_logger("courier.beat")


class LockedScheduler(PersistentScheduler):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lock: Any = None
        self._holding = False
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        super().setup_schedule()
        settings: Settings = self.app.conf.courier_settings
        self._tick_limit = max(1.0, settings.beat_lock_timeout / 3)
        if settings.beat_lock_url:
            client = redis.Redis.from_url(
                settings.beat_lock_url,
                socket_connect_timeout=settings.broker_connect_timeout,
                socket_timeout=settings.broker_connect_timeout,
            )
            self._lock = client.lock(LOCK_NAME, timeout=settings.beat_lock_timeout)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if self._lock is None:
            return float(super().tick(*args, **kwargs))
        if not self._renew_or_acquire():
            self._hold_back_entries()
            return self._tick_limit
        return float(min(super().tick(*args, **kwargs), self._tick_limit))

    def close(self) -> None:
        if self._lock is not None and self._holding:
            with contextlib.suppress(LockError, RedisError):
                self._lock.release()
        super().close()

    def _renew_or_acquire(self) -> bool:
        was_holding = self._holding
        try:
            if self._holding:
                self._lock.reacquire()
            else:
                self._holding = bool(self._lock.acquire(blocking=False))
        except (LockError, RedisError) as error:
            self._holding = False
            if was_holding:
                log.warning("lost the beat lock; standing by", error=type(error).__name__)
        if self._holding and not was_holding:
            log.info("holding the beat lock; sending periodic jobs")
        return self._holding

    def _hold_back_entries(self) -> None:
        now = self.app.now()
        for entry in self.schedule.values():
            entry.last_run_at = now
        self._heap = None
