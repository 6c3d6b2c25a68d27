"""`courier healthcheck`: is the role in this container healthy? Exit 0 if so, 1 if not.

Runs as the image's HEALTHCHECK (no shell, no curl in the image), so it imports only the
standard library and the settings, and answers within a few seconds.
"""

from __future__ import annotations

import urllib.request

from courier.liveness import is_fresh, liveness_file
from courier.settings import Settings


def api_is_healthy(settings: Settings, timeout: float = 3.0) -> bool:
    url = f"http://127.0.0.1:{settings.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed URL
            return bool(response.status == 200)
    except OSError:
        return False


def is_healthy(settings: Settings) -> bool:
    """Every role of this container answers: the API over HTTP, worker and beat by the liveness
    file their loop touches."""
    roles = ("api", "worker", "beat") if settings.mode == "all" else (settings.mode,)
    return all(
        api_is_healthy(settings)
        if role == "api"
        else is_fresh(liveness_file(settings.data_dir, role))
        for role in roles
    )
