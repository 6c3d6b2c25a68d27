"""Settings: read once from the environment at start-up, typed and validated.

Every knob courier has is a field of `Settings`, parsed by `load_settings()`. A `.env` file in
the working directory is read for local runs; a variable set in the real environment wins.
Only the standard library is imported here, so `courier healthcheck` stays fast.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar
from urllib.parse import parse_qsl, urlsplit

MODES: Final = ("api", "worker", "beat", "all")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS: Final = ("json", "console")
BROKER_SCHEMES: Final = ("redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem")
BACKEND_SCHEMES: Final = ("redis", "rediss", "file")
MIN_TOKEN_LENGTH: Final = 16
# TLS options a `rediss://` URL may carry in its query (kombu, Celery and redis-py all read them).
# `ssl_cert_reqs` defaults to `required`: the server's certificate is verified.
REDIS_TLS_OPTIONS: Final = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
REDIS_CERT_REQS: Final = ("required", "optional", "none")
DOTENV_FILE: Final = ".env"
# Celery reads these ahead of its own settings: different from ours, they would bypass courier's
# validation. (Celery's command line copies BROKER_URL and RESULT_BACKEND into them itself.)
CELERY_OVERRIDES: Final = {
    "CELERY_BROKER_URL": "BROKER_URL",
    "CELERY_BROKER_READ_URL": "BROKER_URL",
    "CELERY_BROKER_WRITE_URL": "BROKER_URL",
    "CELERY_RESULT_BACKEND": "RESULT_BACKEND",
}

T = TypeVar("T")


class ConfigError(Exception):
    """A variable is invalid. The message names it and never includes its value."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one courier process."""

    mode: str
    port: int
    broker_url: str
    result_backend: str
    api_tokens: tuple[str, ...]
    log_level: str
    log_format: str
    web_concurrency: int
    worker_concurrency: int
    data_dir: Path
    max_body_bytes: int
    graceful_timeout: int
    task_time_limit: int
    task_soft_time_limit: int
    result_expires: int
    visibility_timeout: int
    broker_connect_timeout: float
    beat_lock_url: str
    beat_lock_timeout: int
    heartbeat_interval: float

    @property
    def embedded(self) -> bool:
        """True when no broker server is used: the filesystem transport under `data_dir`."""
        return self.broker_url.startswith("filesystem://")


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a `.env` file as Docker Compose does: `KEY=value` lines, `#` comments (also after
    an unquoted value), optional quotes, an optional `export ` prefix."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ConfigError(DOTENV_FILE, "cannot be read as UTF-8 text") from None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The effective environment: `.env` values overlaid by the real environment."""
    merged = read_dotenv(Path(DOTENV_FILE))
    merged.update(os.environ if environ is None else environ)
    return merged


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise `ConfigError` for the first bad variable."""
    env = environment(environ)
    reader = _Reader(env)
    for name, ours in CELERY_OVERRIDES.items():
        value = env.get(name, "").strip()
        if value and value != env.get(ours, "").strip():
            raise ConfigError(name, f"would override {ours}; set {ours} instead")

    mode = reader.choice("MODE", MODES, default="all")
    broker_url = env.get("BROKER_URL", "").strip()
    if broker_url:
        _check_url("BROKER_URL", broker_url, BROKER_SCHEMES)
    elif mode != "all":
        raise ConfigError(
            "BROKER_URL",
            f"required when MODE={mode}: the embedded broker serves only MODE=all "
            "(example: redis://redis:6379/0)",
        )
    data_dir = Path(env.get("DATA_DIR", "").strip() or "/tmp/courier")  # noqa: S108 - a tmpfs
    if not data_dir.is_absolute():
        raise ConfigError("DATA_DIR", "must be an absolute path")
    broker_url = broker_url or "filesystem://"

    result_backend = env.get("RESULT_BACKEND", "").strip()
    if result_backend:
        _check_url("RESULT_BACKEND", result_backend, BACKEND_SCHEMES)
    elif is_redis_url(broker_url):
        result_backend = broker_url
    elif broker_url.startswith("filesystem://"):
        result_backend = (data_dir / "results").as_uri()
    else:
        raise ConfigError(
            "RESULT_BACKEND",
            "required when BROKER_URL is not Redis (example: redis://redis:6379/1)",
        )
    for name, url in (("BROKER_URL", broker_url), ("RESULT_BACKEND", result_backend)):
        if url.startswith(("filesystem://", "file://")) and mode != "all":
            raise ConfigError(name, "files in one container serve only MODE=all; use Redis")

    beat_lock_url = env.get("BEAT_LOCK_URL", "").strip()
    if beat_lock_url:
        _check_url("BEAT_LOCK_URL", beat_lock_url, ("redis", "rediss"))
    else:
        beat_lock_url = next((u for u in (broker_url, result_backend) if is_redis_url(u)), "")

    task_time_limit = reader.integer("TASK_TIME_LIMIT", default=300, minimum=1)
    visibility_timeout = reader.integer("VISIBILITY_TIMEOUT", default=3600, minimum=1)
    if is_redis_url(broker_url) and visibility_timeout <= task_time_limit:
        # A job still running when its message becomes visible again runs twice.
        raise ConfigError("VISIBILITY_TIMEOUT", "must be longer than TASK_TIME_LIMIT")
    return Settings(
        mode=mode,
        port=reader.integer("PORT", default=5001, minimum=1, maximum=65535),
        broker_url=broker_url,
        result_backend=result_backend,
        api_tokens=_tokens(env.get("API_TOKENS", "")),
        log_level=reader.choice("LOG_LEVEL", LOG_LEVELS, default="INFO", upper=True),
        log_format=reader.choice("LOG_FORMAT", LOG_FORMATS, default="json"),
        web_concurrency=reader.integer("WEB_CONCURRENCY", default=2, minimum=1, maximum=64),
        worker_concurrency=reader.integer("WORKER_CONCURRENCY", default=2, minimum=1, maximum=256),
        data_dir=data_dir,
        max_body_bytes=reader.integer("MAX_BODY_BYTES", default=65536, minimum=64),
        graceful_timeout=reader.integer("GRACEFUL_TIMEOUT", default=30, minimum=1),
        task_time_limit=task_time_limit,
        task_soft_time_limit=reader.integer(
            "TASK_SOFT_TIME_LIMIT",
            # A tenth of the hard limit (at most 30 s) to clean up after SoftTimeLimitExceeded.
            default=task_time_limit - min(30, max(1, task_time_limit // 10)) or 1,
            minimum=1,
            maximum=task_time_limit,
        ),
        result_expires=reader.integer("RESULT_EXPIRES", default=86400, minimum=60),
        visibility_timeout=visibility_timeout,
        broker_connect_timeout=reader.number(
            "BROKER_CONNECT_TIMEOUT", default=3.0, minimum=0.1, maximum=60
        ),
        beat_lock_url=beat_lock_url,
        beat_lock_timeout=reader.integer("BEAT_LOCK_TIMEOUT", default=30, minimum=3),
        heartbeat_interval=reader.number("HEARTBEAT_INTERVAL", default=60.0, minimum=0.5),
    )


def is_redis_url(url: str) -> bool:
    return url.startswith(("redis://", "rediss://"))


class _Reader:
    """Typed access to the environment that turns bad values into `ConfigError`."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def choice(
        self, name: str, allowed: tuple[str, ...], *, default: str, upper: bool = False
    ) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            raise ConfigError(name, f"must be one of {', '.join(allowed)}")
        return value

    def integer(self, name: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
        return self._bounded(name, int, "a whole number", default, minimum, maximum)

    def number(
        self, name: str, *, default: float, minimum: float, maximum: float | None = None
    ) -> float:
        return self._bounded(name, float, "a number", default, minimum, maximum)

    def _bounded(
        self,
        name: str,
        parse: Callable[[str], T],
        kind: str,
        default: T,
        minimum: float,
        maximum: float | None,
    ) -> T:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise ConfigError(name, f"must be {kind}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(name, "must be a finite number")
        if not minimum <= value <= (maximum if maximum is not None else float("inf")):  # type: ignore[operator]
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise ConfigError(name, f"must be at least {minimum}{upper}")
        return value


def _check_url(name: str, url: str, schemes: tuple[str, ...]) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError(name, "is not a valid URL") from None
    if parts.scheme not in schemes:
        raise ConfigError(name, f"scheme must be one of {', '.join(s + '://' for s in schemes)}")
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "redis" and any(key in query for key in REDIS_TLS_OPTIONS):
        raise ConfigError(name, "ssl_* parameters need a rediss:// URL")
    if parts.scheme == "rediss" and query.get("ssl_cert_reqs", "required") not in REDIS_CERT_REQS:
        raise ConfigError(name, f"ssl_cert_reqs must be one of {', '.join(REDIS_CERT_REQS)}")


_TOKEN_PATTERN = re.compile(r"^[\x21-\x7e]+$")


def _tokens(raw: str) -> tuple[str, ...]:
    tokens = tuple(t.strip() for t in raw.split(",") if t.strip())
    for index, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_LENGTH or not _TOKEN_PATTERN.match(token):
            raise ConfigError(
                "API_TOKENS",
                f"token #{index} must be at least {MIN_TOKEN_LENGTH} printable characters "
                "without spaces",
            )
    return tokens
