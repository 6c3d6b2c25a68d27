"""The worker and beat roles, run in this process by Celery's own command line code."""

from __future__ import annotations

from pathlib import Path

from courier.liveness import liveness_file
from courier.logs import get_logger
from courier.queue.app import CourierCelery
from courier.queue.embedded_transport import UNACKED_OPTION, requeue_unacknowledged

log = get_logger("courier.queue")


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
        # The schedule file in the writable data directory, never in the image. No pidfile: in
        # a container its pid may name another live process after a crash, and beat's Redis
        # lock, not a file, keeps a second beat from sending.
        return [
            *common,
            "--schedule",
            str(settings.data_dir / "beat-schedule"),
            "--scheduler",
            "courier.queue.beat:LockedScheduler",
        ]
    raise ValueError(f"no Celery role {role!r}")


def run(role: str, celery: CourierCelery) -> int:
    """Run the worker or beat until it stops; its exit code."""
    settings = celery.settings
    # A liveness file left by a killed predecessor says nothing about this process.
    liveness_file(settings.data_dir, role).unlink(missing_ok=True)
    if role == "worker" and settings.embedded:
        # The one worker of an embedded container: what a killed worker left unacknowledged
        # runs again.
        options = celery.conf.broker_transport_options
        requeued = requeue_unacknowledged(
            Path(options[UNACKED_OPTION]), Path(options["data_folder_in"])
        )
        if requeued:
            log.warning("requeued jobs a previous worker left unfinished", jobs=requeued)
    code = celery.start(celery_argv(role, celery))
    return int(code or 0)
