"""Logging: structlog for our own lines, and the standard library's loggers (gunicorn, Celery)
routed through the same renderer, so every line on stdout is one JSON object (or, for local work,
a readable console line).

Context bound with `structlog.contextvars` (the request id, the task id) lands on every line.

Lines are written in batches: a debug or info line waits at most `LOG_FLUSH_INTERVAL` (0: not
at all) for the lines after it, and goes out with them in one write; a warning or an error is
written at once, with everything before it. A write per line costs the process a system call
and the container engine a wake-up for every access line and every task (see the README's
Performance). A process killed with SIGKILL loses at most its last `LOG_FLUSH_INTERVAL` of info
lines, never a warning.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.config
import os
import sys
import threading
import time
from typing import Any, Final

import structlog

from courier.settings import Settings

_BATCH_LIMIT: Final = 64 * 1024  # characters: a fuller batch is written at once
# Bytes per write: the processes of a container share one pipe, and POSIX keeps a write of at
# most PIPE_BUF (4096 on Linux) whole. A batch goes out in writes of whole lines up to this
# size, so no process's line is ever cut by another's (a longer line is written on its own).
_WRITE_LIMIT: Final = 4096


class _Output:
    """Standard output, line by line or in batches (see the module's docstring). Lines go to
    `sys.stdout` as it is when they are written out (tests swap it)."""

    def __init__(self) -> None:
        self.interval = 0.0  # seconds a line may wait for the next ones; 0: none
        self._reset()
        os.register_at_fork(
            before=self._before_fork,
            after_in_parent=self._after_fork_in_parent,
            after_in_child=self._reset,
        )
        atexit.register(self.flush)

    def _reset(self) -> None:
        # In a forked child too: its parent's lock may have been held, its flusher is gone.
        # Re-entrant: a signal handler that logs may interrupt a write of the same thread.
        self._lock = threading.RLock()
        self._pending: list[str] = []
        self._size = 0
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None

    def write(self, line: str, urgent: bool = False) -> None:
        with self._lock:
            self._pending.append(line)
            self._size += len(line)
            if urgent or not self.interval or self._size >= _BATCH_LIMIT:
                self._write_pending()
                return
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_forever, name="courier-log-flusher", daemon=True
                )
                self._flusher.start()
        self._wake.set()

    def flush(self) -> None:
        with self._lock:
            self._write_pending()

    def _write_pending(self) -> None:
        lines, self._pending, self._size = self._pending, [], 0
        chunk: list[str] = []
        size = 0
        for line in lines:
            length = len(line.encode("utf-8", "surrogateescape")) + 1
            if chunk and size + length > _WRITE_LIMIT:
                self._write("".join(chunk))
                chunk, size = [], 0
            chunk.append(line + "\n")
            size += length
        if chunk:
            self._write("".join(chunk))

    @staticmethod
    def _write(text: str) -> None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except (OSError, ValueError):  # stdout closed or gone: nothing left to tell
            pass

    def _flush_forever(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self.interval)
            with contextlib.suppress(Exception):  # the flusher never dies
                self.flush()

    def _before_fork(self) -> None:
        self._lock.acquire()
        self._write_pending()  # never inherited by the child, so never written twice

    def _after_fork_in_parent(self) -> None:
        self._lock.release()  # this process's lock now, whichever it was at start


_output = _Output()


def flush() -> None:
    """Write out the lines still waiting: before a process ends without `atexit` (`os._exit`)."""
    _output.flush()


class _OutputHandler(logging.Handler):
    """The standard library's records, formatted, to the same output as structlog's lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _output.write(self.format(record), urgent=record.levelno >= logging.WARNING)
        except Exception:
            self.handleError(record)


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
        "handlers": {"stdout": {"()": _OutputHandler, "formatter": "structured"}},
        "root": {"handlers": ["stdout"], "level": log_level},
        "loggers": {
            # gunicorn configures these itself; send them through ours instead.
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library to stdout in the configured format, in batches
    of at most `LOG_FLUSH_INTERVAL`.

    courier's own lines are rendered by structlog straight to the output (no `logging` record
    on the way: an access line per request is on the hot path); the standard library's loggers
    (gunicorn, Celery, warnings) go through the same processors and renderer.
    """
    _output.flush()
    _output.interval = settings.log_flush_interval
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    logging.captureWarnings(True)  # Python warnings become log lines, not raw stderr
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
    """Writes each rendered line to the output, warnings and errors at once; its `name` goes
    on every line (`add_logger_name`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        _output.write(message)

    def urgent(self, message: str) -> None:
        _output.write(message, urgent=True)

    debug = info = msg
    warning = warn = error = critical = exception = fatal = failure = urgent


def _stdout_logger(*args: Any) -> _StdoutLogger:
    return _StdoutLogger(str(args[0]) if args else "courier")


def get_logger(name: str) -> Any:
    """A structlog logger whose lines carry `logger=name` (configured on its first line)."""
    return structlog.get_logger(name)
