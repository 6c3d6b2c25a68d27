"""A beat scheduler that sends only while it holds a Redis lock.

Run two beats by mistake (or on purpose, for failover) and each periodic job is still sent once:
the beat holding `courier:beat-lock` sends; the others stand by, keeping their entries marked as
just run so that a takeover starts a fresh interval instead of a burst of catch-up runs. The
holder renews the lock on every tick; if it dies, the lock expires after `BEAT_LOCK_TIMEOUT`
seconds and a standby takes over. While Redis does not answer, the holder keeps its claim and
its entries (runs due meanwhile are sent once Redis is back). Without a Redis URL (the embedded
mode) it behaves exactly like Celery's own `PersistentScheduler`.

Every tick also touches beat's liveness file, read by `courier healthcheck`, and sets the
`courier_beat_last_tick_timestamp_seconds` and `courier_beat_lock_held` gauges.
"""

from __future__ import annotations

import contextlib
import time
from enum import Enum
from typing import Any

import redis
from celery.beat import PersistentScheduler
from redis.exceptions import LockError, LockNotOwnedError, RedisError

from courier.liveness import liveness_file
from courier.logs import get_logger
from courier.settings import Settings

LOCK_NAME = "courier:beat-lock"

log = get_logger("courier.beat")


class Claim(Enum):
    HOLDING = "holding"
    STANDBY = "standby"
    UNKNOWN = "unknown"  # Redis did not answer


class LockedScheduler(PersistentScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lock: Any = None
        self._holding = False
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        super().setup_schedule()
        settings: Settings = self.app.settings
        self._liveness = liveness_file(settings.data_dir, "beat")
        if settings.beat_lock_url:
            client = redis.Redis.from_url(
                settings.beat_lock_url,
                socket_connect_timeout=settings.broker_connect_timeout,
                socket_timeout=settings.broker_timeout,
            )
            self._lock = client.lock(LOCK_NAME, timeout=settings.beat_lock_timeout)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self._liveness.touch()
        metrics = self.app.metrics
        metrics.beat_last_tick.set(time.time())
        if self._lock is None:
            metrics.beat_lock_held.set(1)  # unlocked (embedded): this beat sends
            return float(super().tick(*args, **kwargs))
        claim = self._claim()
        # Through a Redis blip the holder keeps its claim (it sends again once Redis answers).
        metrics.beat_lock_held.set(1 if self._holding else 0)
        if claim is Claim.STANDBY:
            self._hold_back_entries()
        if claim is not Claim.HOLDING:
            return float(self.max_interval)
        # Celery caps the delay at max_interval (beat_max_loop_interval): the lock is renewed,
        # and the liveness file touched, at least that often.
        return float(super().tick(*args, **kwargs))

    def close(self) -> None:
        if self._lock is not None and self._holding:
            with contextlib.suppress(LockError, RedisError):
                self._lock.release()
        self._liveness.unlink(missing_ok=True)
        super().close()

    def _claim(self) -> Claim:
        """Renew the lock we hold, or try to take it."""
        was_holding = self._holding
        try:
            if self._holding:
                self._lock.reacquire()
            else:
                self._holding = bool(self._lock.acquire(blocking=False))
        except LockNotOwnedError:
            # It expired while we could not renew it, and another beat may hold it now.
            self._holding = False
            log.warning("lost the beat lock; standing by")
            return Claim.STANDBY
        except RedisError as error:
            log.warning("Redis did not answer for the beat lock", error=type(error).__name__)
            return Claim.UNKNOWN
        if self._holding and not was_holding:
            log.info("holding the beat lock; sending periodic jobs")
        return Claim.HOLDING if self._holding else Claim.STANDBY

    def _hold_back_entries(self) -> None:
        now = self.app.now()
        for entry in self.schedule.values():
            entry.last_run_at = now
        self._heap = None
