"""Two beats against one Redis: only the lock holder sends (the heartbeat is not doubled), and when
the holder is killed the other takes over within the lock timeout.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

import pytest

from tests.integration.processes import Courier, CourierProcess

HEARTBEAT_INTERVAL = 1.0
BEAT_LOCK_TIMEOUT = 3
WINDOW_SECONDS = 8.0
HOLDING = "holding the beat lock; sending periodic jobs"
SENDING = "Scheduler: Sending due task demo.heartbeat (demo.heartbeat)"


def heartbeats_between(worker: CourierProcess, start: float, end: float) -> int:
    """Heartbeat tasks the worker ran between two wall-clock times (their `at` field)."""
    return sum(start <= float(line["at"]) < end for line in worker.events("heartbeat"))


def sent_between(beat: CourierProcess, start: float, end: float) -> int:
    """Heartbeats this beat sent between two wall-clock times (from its log timestamps)."""
    count = 0
    for line in beat.events(SENDING):
        sent_at = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
        count += start <= sent_at < end
    return count


@pytest.mark.timeout(120)
def test_two_beats_send_once_and_fail_over(courier: Courier, redis_url: str) -> None:
    env = {
        "HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
        "BEAT_LOCK_TIMEOUT": str(BEAT_LOCK_TIMEOUT),
    }
    worker = courier.start("worker", redis_url, **env)
    beats = [courier.start("beat", redis_url, name=f"beat-{n}", **env) for n in ("a", "b")]
    worker.wait_worker_ready()
    for beat in beats:
        beat.wait_for_event("beat: Starting...", timeout=30)
    worker.wait_for_event("heartbeat", timeout=15)

    window_start = time.time()
    time.sleep(WINDOW_SECONDS)
    window_end = time.time()
    # The first heartbeat run after the window: by then every heartbeat of the window is logged.
    deadline = time.monotonic() + HEARTBEAT_INTERVAL * 5 + 5
    while heartbeats_between(worker, window_end, math.inf) == 0:
        assert time.monotonic() < deadline, "no heartbeat ran after the window"
        time.sleep(0.1)

    holders = [beat for beat in beats if beat.events(HOLDING)]
    assert len(holders) == 1, f"beats holding the lock: {holders}"
    holder = holders[0]
    standby = next(beat for beat in beats if beat is not holder)
    counted = heartbeats_between(worker, window_start, window_end)
    sent = {beat.name: sent_between(beat, window_start, window_end) for beat in beats}
    print(
        f"\ntwo beats: {counted} heartbeats in {WINDOW_SECONDS:.0f}s "
        f"(interval {HEARTBEAT_INTERVAL}s); sent by each beat: {sent}; holder {holder.name}"
    )
    assert WINDOW_SECONDS / 2 <= counted <= WINDOW_SECONDS + 2
    assert sent[standby.name] == 0, "the standby beat sent periodic jobs"

    killed_at = time.monotonic()
    killed_wall = time.time()
    holder.kill_group()
    standby.wait_for_event(HOLDING, timeout=BEAT_LOCK_TIMEOUT + 5)
    takeover = time.monotonic() - killed_at
    took_over_wall = time.time()
    deadline = time.monotonic() + 10
    while heartbeats_between(worker, took_over_wall, time.time() + 1) < 3:
        assert time.monotonic() < deadline, "heartbeats did not resume after the takeover"
        time.sleep(0.2)
    resumed = time.time() - killed_wall
    print(
        f"failover: {standby.name} holds the lock {takeover:.2f}s after SIGKILL of "
        f"{holder.name} (lock timeout {BEAT_LOCK_TIMEOUT}s); 3 heartbeats after {resumed:.2f}s"
    )
    assert takeover <= BEAT_LOCK_TIMEOUT + 5
