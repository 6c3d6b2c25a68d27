"""The embedded broker (`MODE=all`): kombu's filesystem transport, but a job's message is kept
until the job is acknowledged, so a container killed mid-job runs the job again after a restart
(at least once, as with Redis).

kombu's own transport deletes a message file as soon as it hands the message to the worker: a
crash then loses every job that was running. Here the file is moved into `unacked_folder`
instead, and removed only when the job is acknowledged, rejected or put back; when the worker
starts, `requeue_unacknowledged` puts whatever a dead worker left there back on the queue.

A process can be killed at any moment, so no message file is ever seen half written: each is
written under a temporary name and renamed into place (a kill loses nothing the kernel has; a
power loss may, as the files are not synced to disk). A file that cannot be read anyway is
moved aside into `broker-corrupt` and logged, never retried in a crash loop.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path
from queue import Empty  # the standard library's: what kombu's channels raise
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps, loads

from courier.logs import get_logger

UNACKED_OPTION = "unacked_folder"
CORRUPT_FOLDER = "broker-corrupt"  # beside the unacknowledged folder

log = get_logger("courier.queue")


def write_atomically(path: Path, data: bytes) -> None:
    """`data` at `path`, all or nothing: written under a name no reader matches (a leading dot,
    no `.msg`), then renamed into place."""
    partial = path.with_name(f".{uuid.uuid4().hex}.partial")
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def read_message(path: Path) -> Any:
    """The message in `path`, or None after moving an unreadable file aside (logged): one that
    is no JSON, or no kombu message."""
    try:
        payload = loads(path.read_bytes())
        payload["properties"]["delivery_tag"]  # what every reader relies on
        return payload
    except (ValueError, KeyError, TypeError, AttributeError):
        corrupt = path.parent.parent / CORRUPT_FOLDER
        corrupt.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            path.rename(corrupt / path.name)
        log.error("moved aside an unreadable message file", file=path.name, folder=str(corrupt))
        return None


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacked_files: dict[str, Path] = {}

    @property
    def _unacked_folder(self) -> Path:
        return Path(self.transport_options[UNACKED_OPTION])

    # kombu's two base classes disagree on the parameter's name: keep the filesystem one's.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """kombu's name for the file (ordered by time), written atomically."""
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        try:
            write_atomically(Path(self.data_folder_out) / name, dumps(payload).encode())
        except OSError as error:
            raise ChannelError(f"Cannot add a message to {queue!r}") from error

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
            payload = read_message(kept)
            if payload is None:
                continue
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
    their original order. Partial files a killed writer left behind a minute ago or more go."""
    stale = time.time() - 60
    for partial in queue_folder.glob(".*.partial"):
        with contextlib.suppress(OSError):
            if partial.stat().st_mtime < stale:
                partial.unlink()
    count = 0
    for path in sorted(unacked_folder.glob("*.msg")):
        with contextlib.suppress(FileNotFoundError):
            payload = read_message(path)
            if payload is None:
                continue
            payload.setdefault("headers", {})["redelivered"] = True
            payload["properties"].setdefault("delivery_info", {})["redelivered"] = True
            # Marked as Redis marks a restored message; queued under the same name, so a kill
            # before the unlink only queues it again, never twice.
            write_atomically(queue_folder / path.name, dumps(payload).encode())
            path.unlink()
            count += 1
    return count


def install() -> None:
    """Make `filesystem://` broker URLs use this transport."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
