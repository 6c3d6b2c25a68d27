"""The embedded broker (`MODE=all`): kombu's filesystem transport, but a job's message is kept
until the job is acknowledged, so a container killed mid-job runs the job again after a restart
(at least once, as with Redis).

kombu's own transport deletes a message file as soon as it hands the message to the worker: a
crash then loses every job that was running. Here the file is moved into `unacked_folder`
instead, and removed only when the job is acknowledged, rejected or put back; when the worker
starts, `requeue_unacknowledged` puts whatever a dead worker left there back on the queue.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from queue import Empty  # the standard library's: what kombu's channels raise
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps, loads

UNACKED_OPTION = "unacked_folder"


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacked_files: dict[str, Path] = {}

    @property
    def _unacked_folder(self) -> Path:
        return Path(self.transport_options[UNACKED_OPTION])

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            kept = self._unacked_folder / name
            try:
                os.rename(os.path.join(self.data_folder_in, name), kept)
            except OSError:
                continue  # taken meanwhile
            payload = loads(kept.read_bytes())
            self._unacked_files[payload["properties"]["delivery_tag"]] = kept
            return payload
        raise Empty()

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple=multiple)
        self._forget(delivery_tag)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue=requeue)
        self._forget(delivery_tag)

    def _restore(self, message: Any) -> None:
        super()._restore(message)
        self._forget(message.delivery_tag)

    def _forget(self, delivery_tag: str) -> None:
        path = self._unacked_files.pop(delivery_tag, None)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class Transport(filesystem.Transport):
    Channel = Channel


def requeue_unacknowledged(unacked_folder: Path, queue_folder: Path) -> int:
    """Put back on the queue every message a worker took and never acknowledged (call it only
    where no worker runs: before the one worker of the container starts). Their names keep
    their original order."""
    count = 0
    for path in sorted(unacked_folder.glob("*.msg")):
        with contextlib.suppress(FileNotFoundError):
            payload = loads(path.read_bytes())
            payload.setdefault("headers", {})["redelivered"] = True
            payload["properties"].setdefault("delivery_info", {})["redelivered"] = True
            path.write_bytes(dumps(payload).encode())  # marked as Redis marks a restored one
            path.rename(queue_folder / path.name)
            count += 1
    return count


def install() -> None:
    """Make `filesystem://` broker URLs use this transport."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
