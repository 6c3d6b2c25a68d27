"""The worker and beat roles, run in this process by Celery's own command line code."""

from __future__ import annotations

from courier.queue.app import CourierCelery


def celery_argv(role: str, celery: CourierCelery) -> list[str]:
    """The `celery` command line (without the program name) of the worker or beat role."""
    settings = celery.settings
    common = ["--quiet", role, "--loglevel", settings.log_level]
    if role == "worker":
        return [
            *common,
            "--concurrency",
            str(settings.worker_concurrency),
            # No start-up sync with other workers, no worker-to-worker events: faster start, less
            # broker traffic, and nothing courier uses.
            "--without-mingle",
            "--without-gossip",
        ]
    if role == "beat":
        # Schedule file and pidfile in the writable data directory, never in the image.
        return [
            *common,
            "--schedule",
            str(settings.data_dir / "beat-schedule"),
            "--pidfile",
            str(settings.data_dir / "beat.pid"),
            "--scheduler",
            "courier.queue.beat:LockedScheduler",
        ]
    raise ValueError(f"no Celery role {role!r}")


def run(role: str, celery: CourierCelery) -> int:
    """Run the worker or beat until it stops; its exit code."""
    code = celery.start(celery_argv(role, celery))
    return int(code or 0)
