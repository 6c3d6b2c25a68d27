"""The command line of each role: what the entrypoint execs, or the supervisor spawns."""

from __future__ import annotations

import sys

from courier.config import Settings


def beat_files(settings: Settings) -> tuple[str, str]:
    """Beat's schedule file and pidfile: under the writable data directory, never in the image."""
    return str(settings.data_dir / "beat-schedule"), str(settings.data_dir / "beat.pid")


def worker_liveness_file(settings: Settings) -> str:
    """Touched by a running worker's event loop; read by `courier healthcheck`."""
    return str(settings.data_dir / "worker.alive")


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
            "--optimization",
            "fair",
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
