"""MODE=all: the API, a worker and beat as three child processes of one container.

The embedded trial mode only. Signals received here (SIGTERM, SIGINT) are passed to every child;
when one child exits on its own, the others are stopped and the container exits with
EX_SOFTWARE (70), so an orchestrator sees the failure instead of a half-working container.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType

from courier import exitcodes
from courier.logs import get_logger

log = get_logger("courier.supervisor")


def supervise(commands: Mapping[str, Sequence[str]], stop_timeout: float) -> int:
    """Run every command until one exits or a signal arrives; then stop them all."""
    children: dict[str, subprocess.Popen[bytes]] = {}
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
    try:
        for role, argv in commands.items():
            children[role] = subprocess.Popen(list(argv))
    except OSError as error:
        log.error("could not start a role", error=str(error))
        _signal_all(children, signal.SIGTERM)
        _wait_all(children, stop_timeout)
        return exitcodes.OSERR

    exited_role, code = _wait_for_first_exit(children, lambda: signalled)
    if not signalled:
        log.error("a role exited; stopping the others", role=exited_role, exit_code=code)
        _signal_all(children, signal.SIGTERM)
    _wait_all(children, stop_timeout)
    return exitcodes.OK if signalled else exitcodes.SOFTWARE


def _signal_all(children: Mapping[str, subprocess.Popen[bytes]], signum: int) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signum)


def _wait_all(children: Mapping[str, subprocess.Popen[bytes]], timeout: float) -> None:
    """Wait for every child to exit; kill those still running after `timeout`."""
    deadline = time.monotonic() + timeout
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_for_first_exit(
    children: Mapping[str, subprocess.Popen[bytes]], stop_requested: Callable[[], bool]
) -> tuple[str, int | None]:
    """The first child to exit and its code, or ("", None) as soon as a stop is requested."""
    while True:
        for role, child in children.items():
            code = child.poll()
            if code is not None:
                return role, code
        if stop_requested():
            return "", None
        time.sleep(0.2)
