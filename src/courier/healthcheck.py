"""`courier healthcheck`: is the role in this container healthy? Exit 0 if so, 1 if not.

Runs as the image's HEALTHCHECK (no shell, no curl in the image), so it imports only the
standard library and the settings module, and answers within a few seconds.
"""

from __future__ import annotations

import time
import urllib.request

from courier.config import Settings
from courier.roles import LIVENESS_STALE_AFTER, liveness_file


def api_is_healthy(settings: Settings, timeout: float = 3.0) -> bool:
    url = f"http://127.0.0.1:{settings.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed URL
            return bool(response.status == 200)
    except OSError:
        return False


def loop_is_alive(role: str, settings: Settings) -> bool:
    """The worker's or beat's loop touched its liveness file recently.

    (Not a pid check: in a container the role is PID 1, which is always "alive".)
    """
    try:
        age = time.time() - liveness_file(role, settings).stat().st_mtime
    except OSError:
        return False
    return age < LIVENESS_STALE_AFTER


def is_healthy(settings: Settings) -> bool:
    """Every role of this container answers: the API over HTTP, worker and beat by their file."""
    roles = ("api", "worker", "beat") if settings.mode == "all" else (settings.mode,)
    return all(
        api_is_healthy(settings) if role == "api" else loop_is_alive(role, settings)
        for role in roles
    )
