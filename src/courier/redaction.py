"""Keeping the environment's secrets out of messages made by code that saw the environment (a
plugin's errors, which courier prints)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote, urlsplit

MASK: Final = "***"
# Variables whose whole value is a secret, by name (API_TOKENS, SHOP_DB_PASSWORD, ...).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|KEY|CREDENTIAL|AUTH|DSN", re.IGNORECASE)
_SHORTEST = 4  # a shorter value would mask ordinary words


def redact(text: str, environ: Mapping[str, str]) -> str:
    """`text` with the environment's secrets replaced by `***`: the value of every variable
    named like a secret (and each comma-separated part of it: a list of tokens), and the
    password of every URL in the environment, as written and decoded."""
    found: set[str] = set()
    for name, value in environ.items():
        if _SECRET_NAME.search(name):
            found.update(part.strip() for part in (value, *value.split(",")))
        with contextlib.suppress(ValueError):
            password = urlsplit(value.strip()).password
            if password:
                found.update((password, unquote(password)))
    for secret in sorted((s for s in found if len(s) >= _SHORTEST), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
