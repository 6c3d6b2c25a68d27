"""Waiting for jobs to finish (`Prefer: wait`) over one Redis subscription per process.

Celery publishes every state of a job on the job's result channel. A request that waits
subscribes to that channel on the process's one subscriber connection, shared by every waiting
request, and a thread of its own reads it and hands each message to the requests waiting for
that job. A connection per wait would cost a Redis connection, its handshake and a teardown per
request (four times the round trip of a shared subscription, measured).

Never polled, and nothing missed: a request reads the job's stored state once its subscription
is confirmed, so a job that finished before that (and published to no one) is seen too. A lost
or hung connection only ends the waits early (the requests answer with the state they have); the
next wait opens a new one.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from celery.states import READY_STATES

from courier.logs import get_logger

log = get_logger("courier.queue")

_CONFIRMED = "subscribed"
_GONE = "gone"  # the connection failed: stop waiting


class _Waiter:
    """One request waiting for one job: what the reader hands it, in order."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()


class ResultChannel:
    """The process's subscriber connection, and the requests waiting on it."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._pid = 0
        self._pubsub: Any = None
        self._waiters: dict[bytes, set[_Waiter]] = {}
        self._confirmed: set[bytes] = set()

    @contextlib.contextmanager
    def watching(self, job_id: str) -> Iterator[Callable[[float, Callable[[], Any]], Any]]:
        """Subscribe to the job's channel for the duration of the block; inside it, call the
        yielded `finished(deadline, stored)` to wait."""
        channel = self._backend.get_key_for_task(job_id)
        waiter = _Waiter()
        with self._lock:
            pubsub = self._subscriber()
            group = self._waiters.setdefault(channel, set())
            group.add(waiter)
            if channel in self._confirmed:
                waiter.inbox.put((_CONFIRMED, None))
            elif len(group) == 1:
                try:
                    pubsub.subscribe(channel)  # only sent: the reader sees the confirmation
                except Exception as error:
                    self._drop(pubsub, error)
        try:
            yield lambda deadline, stored: self._finished(waiter, deadline, stored)
        finally:
            with self._lock:
                group = self._waiters.get(channel, set())
                group.discard(waiter)
                if not group and self._waiters.pop(channel, None) is not None:
                    self._confirmed.discard(channel)
                    if self._pubsub is not None:
                        with contextlib.suppress(Exception):
                            self._pubsub.unsubscribe(channel)

    def _finished(
        self, waiter: _Waiter, deadline: float, stored: Callable[[], Any]
    ) -> dict[str, Any] | None:
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, data = waiter.inbox.get(timeout=left)
            except queue.Empty:
                return None
            if kind == _GONE:
                return None
            try:
                meta = stored() if kind == _CONFIRMED else self._backend.decode_result(data)
            except Exception:
                return None  # a wait that fails is a wait that timed out
            if meta["status"] in READY_STATES:
                return dict(meta)
        return None

    def _subscriber(self) -> Any:
        """This process's subscriber connection and its reader (made again after a fork or a
        failure). Called with the lock held."""
        if self._pubsub is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._waiters, self._confirmed = {}, set()
            self._pubsub = self._backend.client.pubsub(ignore_subscribe_messages=False)
            threading.Thread(
                target=self._read, args=(self._pubsub,), name="courier-results", daemon=True
            ).start()
        return self._pubsub

    def _read(self, pubsub: Any) -> None:
        """Hand each message to the requests waiting for its job, until the connection fails
        or is replaced."""
        while self._pubsub is pubsub:
            try:
                # With nothing subscribed, this waits for a subscription instead.
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
            except Exception as error:
                with self._lock:
                    self._drop(pubsub, error)
                return
            channel, kind = message["channel"], message["type"]
            with self._lock:
                if kind == "subscribe":
                    self._confirmed.add(channel)
                    item: tuple[str, Any] = (_CONFIRMED, None)
                elif kind == "unsubscribe":
                    self._confirmed.discard(channel)
                    continue
                elif kind == "message":
                    item = ("message", message["data"])
                else:
                    continue
                for waiter in self._waiters.get(channel, ()):
                    waiter.inbox.put(item)

    def _drop(self, pubsub: Any, error: BaseException) -> None:
        """Give up a failed connection: its waits end now. Called with the lock held."""
        if self._pubsub is not pubsub:
            return
        log.warning("result subscription lost", error=type(error).__name__)
        for group in self._waiters.values():
            for waiter in group:
                waiter.inbox.put((_GONE, None))
        self._pubsub, self._waiters, self._confirmed = None, {}, set()
        with contextlib.suppress(Exception):
            pubsub.close()
