"""Liveness files: the worker's event loop and beat's scheduler loop touch one each, and
`courier healthcheck` reads it (in a container the role is PID 1, so a pid says nothing)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

# A running loop touches its file at least this often; a file older than STALE_AFTER is dead.
INTERVAL: Final = 10.0
STALE_AFTER: Final = 6 * INTERVAL


def liveness_file(data_dir: Path, role: str) -> Path:
    return data_dir / f"{role}.alive"


def is_fresh(path: Path) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    return age < STALE_AFTER
