"""Logging: structlog for our own lines, and the standard library's loggers (gunicorn, Celery)
routed through the same renderer, so every line on stdout is one JSON object (or, for local work,
a readable console line).

Context bound with `structlog.contextvars` (the request id, the task id) lands on every line.
"""

from __future__ import annotations

import logging
import logging.config
import sys
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
    """Route structlog and the standard library to stdout in the configured format."""
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    logging.captureWarnings(True)  # Python warnings become log lines, not raw stderr
    structlog.configure(
        processors=[
            *_SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
