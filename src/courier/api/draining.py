"""A gunicorn sync worker that drains its listen queue on SIGTERM.

A stock sync worker exits after its current request; connections the kernel had already
accepted for it (waiting in the listen backlog) are then reset. This worker serves those too
before it exits, within the graceful timeout, so `docker stop` drops no request in flight.
"""

from __future__ import annotations

import errno
import time

from gunicorn.workers.sync import SyncWorker

_NOTHING_WAITING = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED)


class DrainingSyncWorker(SyncWorker):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        deadline = time.monotonic() + max(1.0, self.cfg.graceful_timeout - 1)
        for listener in self.sockets:
            listener.setblocking(False)
            while time.monotonic() < deadline:
                try:
                    self.accept(listener)
                except OSError as error:
                    if error.errno in _NOTHING_WAITING:
                        break
                    raise
            listener.close()
