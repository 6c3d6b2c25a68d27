"""Reading courier's JSON log lines back in tests."""

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
