"""The API token generated when `API_TOKENS` is unset: one per container, kept in `DATA_DIR`."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from courier.settings import Settings


def generated_token_file(settings: Settings) -> Path:
    return settings.data_dir / "api-token"


def ensure_generated_token(settings: Settings) -> str:
    """A token kept in the data directory (mode 0600), reused when the container restarts.

    Only a file this user made, readable by nobody else, is reused; a new one is created
    exclusively and never through a symlink.
    """
    path = generated_token_file(settings)
    try:
        found = path.lstat()
    except FileNotFoundError:
        return _create(path)
    if not stat.S_ISREG(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise ValueError(f"{path} is not a private file of this user")
    value = path.read_text(encoding="ascii").strip()
    return value if value else _create(path)


def _create(path: Path) -> str:
    """A new token, written whole under a private temporary name, then linked into place (a
    link, unlike a rename, fails when the name is taken): a kill at any moment leaves either no
    token file or a complete one, and of two processes starting at once one wins and the other
    takes its token."""
    value = secrets.token_urlsafe(32)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        with os.fdopen(os.open(partial, flags, 0o600), "w", encoding="ascii") as handle:
            handle.write(value + "\n")
        if path.exists() and not path.read_text(encoding="ascii").strip():
            path.unlink()  # an empty file: never the token (left by an older version's kill)
        os.link(partial, path)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    finally:
        partial.unlink(missing_ok=True)
    return value
