"""`courier healthcheck`: is the role in this container healthy? Exit 0 if so, 1 if not.

Runs as the image's HEALTHCHECK (no shell, no curl in the image), so it imports only the
standard library and the settings module, and answers within a few seconds.
"""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

from courier.config import Settings
from courier.roles import beat_files, worker_liveness_file

# The worker touches its liveness file every LIVENESS_INTERVAL seconds.
LIVENESS_INTERVAL = 10.0
LIVENESS_STALE_AFTER = 6 * LIVENESS_INTERVAL


def api_is_healthy(settings: Settings, timeout: float = 3.0) -> bool:
    url = f"http://127.0.0.1:{settings.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed URL
            return bool(response.status == 200)
    except OSError:
        return False


def worker_is_healthy(settings: Settings) -> bool:
    try:
        age = time.time() - Path(worker_liveness_file(settings)).stat().st_mtime
    except OSError:
        return False
    return age < LIVENESS_STALE_AFTER


def beat_is_healthy(settings: Settings) -> bool:
    _, pidfile = beat_files(settings)
    try:
        pid = int(Path(pidfile).read_text(encoding="ascii").strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def is_healthy(settings: Settings) -> bool:
    checks = {
        "api": (api_is_healthy,),
        "worker": (worker_is_healthy,),
        "beat": (beat_is_healthy,),
        "all": (api_is_healthy, worker_is_healthy, beat_is_healthy),
    }[settings.mode]
    return all(check(settings) for check in checks)
