"""The broker and the result backend as a request sees them: bounded calls that fail fast, the
readiness check (answering, and accepting writes), and one log line per change of state.

Every call here is bounded by the socket timeouts of the Celery configuration (`BROKER_TIMEOUT`,
`BROKER_CONNECT_TIMEOUT`). A call is tried again once only when it failed fast (a pooled
connection that Redis closed while it restarted): never after a timeout, so a paused Redis costs a
request one timeout, not several.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from courier.logs import get_logger
from courier.names import backend_key
from courier.queue.redis_backend import set_record
from courier.settings import is_redis_url

T = TypeVar("T")
OK: Final = "ok"
BROKER: Final = "broker"
RESULT_BACKEND: Final = "result_backend"
# A failure faster than this is a broken pooled connection, worth one more try.
_FAST_FAILURE = 0.5
_PROBE_KEY = backend_key("readiness-probe")
_PROBE_TTL = 60

log = get_logger("courier.dependencies")


class Unavailable(Exception):
    """The broker or the result backend did not answer, or refused the call."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason


_REFUSING_WRITES: Final = ("OOM", "MISCONF", "READONLY")


def describe(error: BaseException) -> str:
    """What went wrong, in words that hold no secret (no URL, no reply text beyond its code)."""
    while error.__cause__ is not None:  # kombu and Celery wrap the client's error: explain it
        error = error.__cause__
    name = type(error).__name__
    words = str(error).split(" ", 1)
    # A Redis error reply: its code (OOM, MISCONF, READONLY, NOAUTH, ...), kept by redis-py.
    code = getattr(error, "status_code", None) or (words[0] if words[0].isupper() else None)
    if isinstance(code, str) and code.isalpha() and len(code) <= 16:
        return f"refuses writes ({code})" if code in _REFUSING_WRITES else f"refused ({code})"
    if "Timeout" in name or isinstance(error, TimeoutError):
        return "timed out"
    # kombu reports a lost or refused broker connection as its OperationalError.
    if "Connection" in name or name == "OperationalError" or isinstance(error, OSError):
        return "unreachable"
    return f"failed ({name})"


class States:
    """The last known state of each dependency; logs a line only when one changes."""

    def __init__(self) -> None:
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, component: str, state: str) -> None:
        with self._lock:
            before = self._states.get(component, OK)
            self._states[component] = state
        if state == before:
            return
        if state == OK:
            log.info("answering again", component=component)
        else:
            log.warning("not answering", component=component, reason=state)


class Dependencies:
    """Bounded calls to the broker and the result backend of one Celery app."""

    def __init__(self, celery: Any) -> None:
        self._celery = celery
        self.states = States()

    def call(self, component: str, action: Callable[[], T]) -> T:
        """Run `action` (one broker or backend call); `Unavailable` when it fails."""
        for attempt in (1, 2):
            started = time.monotonic()
            try:
                result = action()
            except Exception as error:
                fast = time.monotonic() - started < _FAST_FAILURE
                if attempt == 1 and fast and describe(error) == "unreachable":
                    continue
                reason = describe(error)
                self.states.record(component, reason)
                raise Unavailable(component, reason) from error
            self.states.record(component, OK)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def check(self) -> Mapping[str, str]:
        """Readiness: each dependency answers and takes a write; `ok` or why not. Both are
        probed at once, so a hung Redis costs the probe one timeout, not one per dependency."""
        checks: dict[str, str] = {}

        def probe(component: str, action: Callable[[], None]) -> None:
            try:
                self.call(component, action)
                checks[component] = OK
            except Unavailable as failure:
                checks[component] = failure.reason

        # The broker beside, on the app's connection pool; the backend here: Celery keeps a
        # backend (and its connections) per thread, and this request thread's is reused.
        broker = threading.Thread(target=probe, args=(BROKER, self._probe_broker), daemon=True)
        broker.start()
        probe(RESULT_BACKEND, self._probe_backend)
        conf = self._celery.conf
        broker.join(timeout=conf.broker_connection_timeout + conf.redis_socket_timeout + 1)
        if broker.is_alive():  # bounded by its sockets; this is the last line of defence
            self.states.record(BROKER, "timed out")
            checks.setdefault(BROKER, "timed out")
        return {name: checks[name] for name in (BROKER, RESULT_BACKEND)}

    def _probe_broker(self) -> None:
        # A pooled connection: a readiness probe every few seconds opens nothing new.
        timeout = self._celery.conf.redis_socket_timeout
        with self._celery.pool.acquire(block=True, timeout=timeout) as connection:
            if is_redis_url(self._celery.conf.broker_url):
                client = connection.default_channel.client
                client.set(_PROBE_KEY, str(time.time()), ex=_PROBE_TTL)
            else:
                connection.ensure_connection(max_retries=1)
                connection.default_channel  # noqa: B018 - opens the channel: a round trip

    def _probe_backend(self) -> None:
        set_record(self._celery.backend, _PROBE_KEY, str(time.time()))
