"""The demo's own settings, declared like courier's (`courier.settings.setting`)."""

from __future__ import annotations

from dataclasses import dataclass

from courier.settings import Number, setting


@dataclass(frozen=True)
class DemoSettings:
    heartbeat_interval: float = setting(
        "HEARTBEAT_INTERVAL",
        Number(0.5, 86400),
        60.0,
        "Demo: seconds between `demo.heartbeat` runs.",
    )
