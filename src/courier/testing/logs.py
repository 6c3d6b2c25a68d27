"""Reading courier's JSON log lines back in tests (`LOG_FORMAT=json`, the image's default)."""

from __future__ import annotations

import json
from typing import Any


def parse_json_lines(text: str) -> list[dict[str, Any]]:
    """The lines of `text` that are JSON objects, parsed; other lines (warnings, tracebacks,
    banners) are skipped."""
    lines = []
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw.startswith("{"):
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


def last_lines(text: str, count: int = 20) -> str:
    """The last `count` non-empty lines of `text`, for error messages."""
    return "\n".join([line for line in text.splitlines() if line.strip()][-count:])
