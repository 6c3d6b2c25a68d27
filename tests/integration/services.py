"""The servers courier talks to in integration tests, as the host sees them (on 127.0.0.1)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.integration.processes import LOOPBACK

REDIS_PASSWORD = "R3disPassw0rdForItest"
REDIS_DATABASES = 64
# On every container of these tests, so that whoever lists the engine's containers sees whose.
LABELS = {"courier.tests": "integration"}


def container_name(role: str) -> str:
    return f"courier-itest-{role}-{uuid.uuid4().hex[:8]}"


@dataclass
class RedisServer:
    port: int
    password: str | None = None
    container: Any = None
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(0))

    def url(self, db: int) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{LOOPBACK}:{self.port}/{db}"

    def fresh_url(self) -> str:
        """The URL of a database number no one has used yet in this session."""
        self.check_running()
        db = next(self._numbers)
        assert db < REDIS_DATABASES, "out of Redis databases: raise REDIS_DATABASES"
        return self.url(db)

    def check_running(self) -> None:
        if self.container is None:
            return
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        assert wrapped.status == "running", (
            f"the Redis container {wrapped.name} is {wrapped.status}: "
            "stopped by something outside these tests?"
        )
