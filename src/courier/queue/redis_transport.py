"""kombu's Redis transport with one fix and one saving.

The fix: a worker survives the broker going away mid-job.

When Redis goes away while jobs run, Celery closes the lost connection; the channel then puts the
running jobs' messages back, and later acknowledges the jobs that finish, through a transport that
is already detached. kombu raises `AttributeError` there, which Celery treats as unrecoverable:
the whole worker exits. This channel raises a connection error instead, which Celery handles as
for any lost connection: it logs, reconnects and goes on. The messages stay safe in Redis's
unacknowledged set and are redelivered after VISIBILITY_TIMEOUT if never acknowledged.

The saving: kombu builds a new Redis client object (about 150 µs of Python) for every message
it publishes; this channel keeps one per connection pool (clients are safe to share).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    _publishing_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        cached = self._publishing_client
        if cached is None or cached.connection_pool is not self.pool:
            cached = self._publishing_client = super()._create_client()
        return cached

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection of this channel was closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Make `redis://` and `rediss://` broker URLs use this transport (logs still say redis)."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
