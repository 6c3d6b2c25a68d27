"""The command line of each role: what the entrypoint execs, or the supervisor spawns."""

from __future__ import annotations

import sys
from pathlib import Path

from courier.config import Settings


def beat_files(settings: Settings) -> tuple[str, str]:
    """Beat's schedule file and pidfile: in the writable data directory, never in the image."""
    return str(settings.data_dir / "beat-schedule"), str(settings.data_dir / "beat.pid")


# A running worker's event loop, and a running beat's scheduler loop, touch their liveness file
# at least this often; `courier healthcheck` calls a file older than LIVENESS_STALE_AFTER dead.
LIVENESS_INTERVAL = 10.0
LIVENESS_STALE_AFTER = 6 * LIVENESS_INTERVAL


def liveness_file(role: str, settings: Settings) -> Path:
    """The liveness file of the worker or beat in this container."""
    return settings.data_dir / f"{role}.alive"


def command(role: str, settings: Settings) -> list[str]:
    """argv that starts `role` (api, worker or beat) with this interpreter."""
    python = sys.executable
    celery = [python, "-m", "celery", "--app", "courier.celery_app", "--quiet"]
    if role == "api":
        return [
            python,
            "-m",
            "gunicorn",
            "--config",
            "python:courier.api.gunicorn_conf",
            "courier.api.wsgi:application",
        ]
    if role == "worker":
        return [
            *celery,
            "worker",
            "--loglevel",
            settings.log_level,
            "--concurrency",
            str(settings.worker_concurrency),
            # No start-up sync with other workers, no worker-to-worker events: faster start, less
            # broker traffic, and nothing courier uses.
            "--without-mingle",
            "--without-gossip",
        ]
    if role == "beat":
        schedule, pidfile = beat_files(settings)
        return [
            *celery,
            "beat",
            "--loglevel",
            settings.log_level,
            "--schedule",
            schedule,
            "--pidfile",
            pidfile,
            "--scheduler",
            "courier.beat:LockedScheduler",
        ]
    raise ValueError(f"no command for role {role!r}")
