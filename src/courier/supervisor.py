"""MODE=all: the API, a worker and beat as three child processes of one container.

The embedded trial mode only. Signals received here (SIGTERM, SIGINT) are passed to every child;
when one child exits, the others are stopped and the container exits too, so an orchestrator
sees the failure instead of a half-working container.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from types import FrameType

from courier import exitcodes
from courier.logs import get_logger

STOP_TIMEOUT = 25.0

log = get_logger("courier.supervisor")


def supervise(commands: Mapping[str, Sequence[str]]) -> int:
    children = {role: subprocess.Popen(list(argv)) for role, argv in commands.items()}
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    exited_role, code = _wait_for_first_exit(children)
    if not stopping:
        log.error("a role exited; stopping the others", role=exited_role, exit_code=code)
        forward(signal.SIGTERM, None)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if stopping:
        return exitcodes.OK
    return code if code not in (0, None) else exitcodes.SOFTWARE


def _wait_for_first_exit(children: Mapping[str, subprocess.Popen[bytes]]) -> tuple[str, int]:
    while True:
        for role, child in children.items():
            code = child.poll()
            if code is not None:
                return role, code
        time.sleep(0.2)
