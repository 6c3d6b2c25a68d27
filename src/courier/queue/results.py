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

Threads: redis-py lets one thread read a subscription while others send on it, but not two
threads send at once, so commands go one at a time (`_send`), each request waiting for its turn
no longer than its own deadline; the registry of waiting requests has a lock of its own, never
held across a network call. The connection stays subscribed to a private channel all along, so
redis-py never sees it leave subscribed mode while another thread subscribes.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from celery.states import READY_STATES

from courier.logs import get_logger

log = get_logger("courier.queue")

_CONFIRMED = "subscribed"
_GONE = "gone"  # the connection failed: stop waiting
Meta = dict[str, Any]
# One request waiting for one job: what the reader hands it, in order.
_Inbox = queue.SimpleQueue[tuple[str, Any]]


class ResultChannel:
    """The process's subscriber connection, and the requests waiting on it."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._reset()
        self._healthy = True
        os.register_at_fork(after_in_child=self._reset)  # gunicorn forks after building it

    def _reset(self) -> None:
        self._lock = threading.Lock()  # the registry below
        self._send = threading.Lock()  # commands on the connection, one at a time
        self._forget()

    def _forget(self) -> None:
        """No connection, and nobody waiting on one."""
        self._pubsub: Any = None
        self._waiters: dict[bytes, set[_Inbox]] = {}
        self._confirmed: set[bytes] = set()  # channels whose subscription Redis confirmed
        self._sent: set[bytes] = set()  # channels we asked Redis to subscribe

    @contextlib.contextmanager
    def watching(
        self, job_id: str, deadline: float
    ) -> Iterator[Callable[[Callable[[], Any]], Meta | None]]:
        """Subscribed to the job's channel for the block (until `deadline` at most); the
        yielded `finished(stored)` waits and returns the job's final meta, or None. `stored`
        reads the stored meta, once the subscription is confirmed."""
        channel = self._backend.get_key_for_task(job_id)
        inbox: _Inbox = queue.SimpleQueue()
        with self._lock:
            pubsub = self._subscriber()
            self._waiters.setdefault(channel, set()).add(inbox)
            if channel in self._confirmed:
                inbox.put((_CONFIRMED, None))
        self._sync(pubsub, channel, deadline)
        try:
            yield lambda stored: self._finished(inbox, deadline, stored)
        finally:
            with self._lock:
                group = self._waiters.get(channel, set())
                group.discard(inbox)
                if not group:
                    self._waiters.pop(channel, None)
            self._sync(pubsub, channel, time.monotonic() + 1.0)

    def _finished(self, inbox: _Inbox, deadline: float, stored: Callable[[], Any]) -> Meta | None:
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, data = inbox.get(timeout=left)
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
        """This process's subscriber (a new one after a failure, which emptied the registry):
        no network call. Called with the registry's lock held."""
        if self._pubsub is None:
            self._pubsub = self._backend.client.pubsub(ignore_subscribe_messages=False)
        return self._pubsub

    def _sync(self, pubsub: Any, channel: bytes, deadline: float) -> None:
        """Subscribe to `channel` or leave it, as the waiting requests now need; decided and
        sent in one turn, so concurrent requests for one job never leave it unsubscribed."""
        if not self._send.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return  # another request holds the connection past our deadline: do not wait
        try:
            with self._lock:
                if self._pubsub is not pubsub:
                    return
                wanted = bool(self._waiters.get(channel))
                if wanted == (channel in self._sent):
                    return
                (self._sent.add if wanted else self._sent.discard)(channel)
                first = not pubsub.subscribed and pubsub.connection is None
            if first:
                # The private channel keeps the connection subscribed between waits.
                pubsub.subscribe(f"courier-results-{uuid.uuid4().hex}")
                threading.Thread(
                    target=self._read, args=(pubsub,), name="courier-results", daemon=True
                ).start()
            (pubsub.subscribe if wanted else pubsub.unsubscribe)(channel)
        except Exception as error:
            with self._lock:
                self._drop(pubsub, error)
        finally:
            self._send.release()

    def _read(self, pubsub: Any) -> None:
        """Hand each message to the requests waiting for its job, until the connection fails
        or is replaced."""
        while self._pubsub is pubsub:
            try:
                message = pubsub.get_message(timeout=1.0)
            except Exception as error:
                with self._lock:
                    self._drop(pubsub, error)
                return
            if message is None:
                self._leave_unwatched(pubsub)
                continue
            channel, kind = message["channel"], message["type"]
            with self._lock:
                if kind == "subscribe":
                    self._confirmed.add(channel)
                    if not self._healthy:
                        self._healthy = True
                        log.info("result subscription answering again")
                    item: tuple[str, Any] = (_CONFIRMED, None)
                elif kind == "unsubscribe":
                    self._confirmed.discard(channel)
                    continue
                elif kind == "message":
                    item = ("message", message["data"])
                else:
                    continue
                for inbox in self._waiters.get(channel, ()):
                    inbox.put(item)

    def _leave_unwatched(self, pubsub: Any) -> None:
        """When idle: leave the channels no request waits for any more (a request that could
        not get its turn to unsubscribe left them behind)."""
        if not self._send.acquire(blocking=False):
            return
        try:
            with self._lock:
                stale = (
                    [c for c in self._sent if c not in self._waiters]
                    if self._pubsub is pubsub
                    else []
                )
                self._sent.difference_update(stale)
            if stale:
                pubsub.unsubscribe(*stale)
        except Exception as error:
            with self._lock:
                self._drop(pubsub, error)
        finally:
            self._send.release()

    def _drop(self, pubsub: Any, error: BaseException) -> None:
        """Give up a failed connection: its waits end now; the next wait opens a new one.
        Logged once per failure, not once per wait. Called with the registry's lock held."""
        if self._pubsub is not pubsub:
            return
        if self._healthy:
            self._healthy = False
            log.warning("result subscription lost", error=type(error).__name__)
        for group in self._waiters.values():
            for inbox in group:
                inbox.put((_GONE, None))
        self._forget()
        with contextlib.suppress(Exception):
            pubsub.close()
