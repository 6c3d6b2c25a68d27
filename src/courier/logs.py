"""Logging: structlog for our own lines, and the standard library's loggers (gunicorn, Celery)
routed through the same renderer, so every line on stdout is one JSON object (or, for local work,
a readable console line).

Context bound with `structlog.contextvars` (the request id, the task id) lands on every line.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import threading
from typing import Any

import structlog

from courier.settings import Settings

_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _renderer(log_format: str) -> Any:
    if log_format == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer()


def logging_config(log_level: str, log_format: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` mapping (also handed to gunicorn as `logconfig_dict`)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": _SHARED_PROCESSORS,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    _renderer(log_format),
                ],
            }
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "structured",
            }
        },
        "root": {"handlers": ["stdout"], "level": log_level},
        "loggers": {
            # gunicorn configures these itself; send them through ours instead.
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library to stdout in the configured format.

    courier's own lines are rendered by structlog straight to stdout (no `logging` record on
    the way: an access line per request is on the hot path); the standard library's loggers
    (gunicorn, Celery, warnings) go through the same processors and renderer.
    """
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    logging.captureWarnings(True)  # Python warnings become log lines, not raw stderr
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _renderer(settings.log_format),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level]
        ),
        logger_factory=_stdout_logger,
        # Not cached: a logger made at import sees every later configuration (tests configure
        # several times); it costs about 2 µs a line.
        cache_logger_on_first_use=False,
    )


class _StdoutLogger:
    """Writes each rendered line to standard output as it is when the line is written (tests
    swap it), one whole line at a time; its `name` goes on every line (`add_logger_name`)."""

    _lock = threading.Lock()

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        with self._lock:
            sys.stdout.write(message + "\n")

    debug = info = warning = warn = error = critical = exception = fatal = failure = msg


def _stdout_logger(*args: Any) -> _StdoutLogger:
    return _StdoutLogger(str(args[0]) if args else "courier")


def get_logger(name: str) -> Any:
    """A structlog logger whose lines carry `logger=name` (configured on its first line)."""
    return structlog.get_logger(name)
