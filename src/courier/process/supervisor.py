"""MODE=all: the API, a worker and beat as three child processes of one container.

The embedded trial mode only. The children are forked from this process after the settings and
the plugin were loaded, so the code is imported once and a bad plugin is reported once. Signals
received here (SIGTERM, SIGINT) are passed to every child; when one child exits on its own, the
others are stopped and the container exits with EX_SOFTWARE (70), so an orchestrator sees the
failure instead of a half-working container. As PID 1 it also reaps orphaned grandchildren.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from types import FrameType

from courier import exitcodes, logs
from courier.logs import get_logger

log = get_logger("courier.supervisor")

Role = Callable[[], int]


def supervise(roles: Mapping[str, Role], stop_timeout: float) -> int:
    """Run every role in a child until one exits or a signal arrives; then stop them all."""
    children: dict[int, str] = {}
    signalled = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        # Always as SIGTERM, the graceful stop of every role: a terminal's Ctrl-C has already
        # sent SIGINT to the children too, and a second SIGINT means "stop now" to Celery.
        nonlocal signalled
        signalled = True
        _signal_all(children, signal.SIGTERM)

    # Handlers first: a SIGTERM arriving while the children start is not lost.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for name, role in roles.items():
        if signalled:
            break
        try:
            children[_fork(role)] = name
        except OSError as error:
            log.error("could not start a role", role=name, error=str(error))
            _signal_all(children, signal.SIGTERM)
            _wait_all(children, stop_timeout)
            return exitcodes.OSERR

    exited, code = _wait_for_first_exit(children, lambda: signalled)
    if not signalled:
        log.error("a role exited; stopping the others", role=exited, exit_code=code)
        _signal_all(children, signal.SIGTERM)
    _wait_all(children, stop_timeout)
    return exitcodes.OK if signalled else exitcodes.SOFTWARE


def _fork(role: Role) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    # The child: the role installs its own handlers.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = exitcodes.SOFTWARE
    try:
        code = role()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else exitcodes.SOFTWARE
    except BaseException:
        log.exception("a role failed")
    finally:
        logs.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _signal_all(children: Mapping[int, str], signum: int) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _reap() -> tuple[int, int] | None:
    """One exited child (ours, or an orphan we inherited as PID 1) and its exit code."""
    try:
        pid, status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return None
    return (pid, os.waitstatus_to_exitcode(status)) if pid else None


def _wait_for_first_exit(
    children: dict[int, str], stop_requested: Callable[[], bool]
) -> tuple[str, int | None]:
    """The first role to exit and its code, or ("", None) as soon as a stop is requested."""
    while not stop_requested():
        while (reaped := _reap()) is not None:
            pid, code = reaped
            if pid in children:
                return children.pop(pid), code
        time.sleep(0.2)
    return "", None


def _wait_all(children: dict[int, str], timeout: float) -> None:
    """Wait for every child to exit; kill those still running after `timeout`."""
    deadline = time.monotonic() + timeout
    while children and time.monotonic() < deadline:
        while (reaped := _reap()) is not None:
            children.pop(reaped[0], None)
        time.sleep(0.1)
    _signal_all(children, signal.SIGKILL)
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        children.pop(pid)
