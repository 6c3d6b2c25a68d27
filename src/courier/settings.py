"""Settings: each declared once (variable, kind, default, range, description), read once from the
environment at start-up, typed and validated.

`Settings` is the kit's own; business code declares its settings the same way (`setting()` fields
on a frozen dataclass, read with `load()`). The README's settings tables are rendered from these
declarations (`markdown_table`). A `.env` file in the working directory is read for local runs,
with Docker Compose's syntax (python-dotenv, imported only when the file exists); a variable set
in the real environment wins. Nothing else outside the standard library is imported here, so
`courier healthcheck` stays fast.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit

MODES: Final = ("api", "worker", "beat", "all")
BROKER_SCHEMES: Final = ("redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem")
BACKEND_SCHEMES: Final = ("redis", "rediss", "file")
REDIS_SCHEMES: Final = ("redis", "rediss")
MIN_TOKEN_LENGTH: Final = 16
# TLS options a `rediss://` URL may carry in its query (kombu, Celery and redis-py all read them).
# `ssl_cert_reqs` defaults to `required`: the server's certificate is verified.
REDIS_TLS_OPTIONS: Final = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
REDIS_CERT_REQS: Final = ("required", "optional", "none")
DOTENV_FILE: Final = ".env"
DEFAULT_PLUGIN: Final = "courier.demo:create_plugin"
# Celery reads these ahead of its own settings: different from ours, they would bypass courier's
# validation. (Celery's command line copies BROKER_URL and RESULT_BACKEND into them itself.)
CELERY_OVERRIDES: Final = {
    "CELERY_BROKER_URL": "BROKER_URL",
    "CELERY_BROKER_READ_URL": "BROKER_URL",
    "CELERY_BROKER_WRITE_URL": "BROKER_URL",
    "CELERY_RESULT_BACKEND": "RESULT_BACKEND",
}


class ConfigError(Exception):
    """A variable is invalid. The message names it and never includes its value."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class Invalid(ValueError):
    """Raised by a kind's parser: what is wrong with the value, without the value."""


# -- kinds of values ------------------------------------------------------------------------------


class Kind(Protocol):
    """How one setting's text becomes a value, and what the README says it accepts."""

    @property
    def allowed(self) -> str: ...

    def parse(self, raw: str) -> Any: ...


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,20}")


@dataclass(frozen=True)
class Number:
    """A finite number from `minimum` to `maximum`, both included."""

    minimum: float
    maximum: float

    @property
    def allowed(self) -> str:
        return f"{_show(self.minimum)} to {_show(self.maximum)}"

    def parse(self, raw: str) -> Any:
        value = self._convert(raw)
        if not self.minimum <= value <= self.maximum:
            raise Invalid(f"must be from {self.allowed}")
        return value

    def _convert(self, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise Invalid(f"must be a number from {self.allowed}") from None
        if not math.isfinite(value):
            raise Invalid("must be a finite number")
        return value


@dataclass(frozen=True)
class Integer(Number):
    """A whole number (ASCII digits only) from `minimum` to `maximum`."""

    def _convert(self, raw: str) -> float:
        if not _WHOLE_NUMBER.fullmatch(raw):
            raise Invalid(f"must be a whole number from {self.allowed}")
        return int(raw)


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]
    upper: bool = False

    @property
    def allowed(self) -> str:
        return ", ".join(f"`{option}`" for option in self.options)

    def parse(self, raw: str) -> str:
        value = raw.upper() if self.upper else raw.lower()
        if value not in self.options:
            raise Invalid(f"must be one of {', '.join(self.options)}")
        return value


@dataclass(frozen=True)
class Url:
    schemes: tuple[str, ...]

    @property
    def allowed(self) -> str:
        return ", ".join(f"`{scheme}://`" for scheme in self.schemes)

    def parse(self, raw: str) -> str:
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise Invalid("is not a valid URL") from None
        if parts.scheme not in self.schemes:
            raise Invalid(f"scheme must be one of {', '.join(s + '://' for s in self.schemes)}")
        query = dict(parse_qsl(parts.query))
        if parts.scheme == "redis" and any(key in query for key in REDIS_TLS_OPTIONS):
            raise Invalid("ssl_* parameters need a rediss:// URL")
        cert_reqs = query.get("ssl_cert_reqs", "required")
        if parts.scheme == "rediss" and cert_reqs not in REDIS_CERT_REQS:
            raise Invalid(f"ssl_cert_reqs must be one of {', '.join(REDIS_CERT_REQS)}")
        return raw


_TOKEN = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class Tokens:
    allowed = f"comma-separated, each ≥ {MIN_TOKEN_LENGTH} printable characters"

    def parse(self, raw: str) -> tuple[str, ...]:
        tokens = tuple(t.strip() for t in raw.split(",") if t.strip())
        for index, token in enumerate(tokens, start=1):
            if len(token) < MIN_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
                raise Invalid(
                    f"token #{index} must be at least {MIN_TOKEN_LENGTH} printable characters "
                    "without spaces"
                )
        return tokens


@dataclass(frozen=True)
class Directory:
    allowed = "an absolute path"

    def parse(self, raw: str) -> Path:
        path = Path(raw)
        if not path.is_absolute():
            raise Invalid("must be an absolute path")
        return path


@dataclass(frozen=True)
class Address:
    allowed = "an IPv4 or IPv6 address"

    def parse(self, raw: str) -> str:
        import ipaddress

        try:
            return str(ipaddress.ip_address(raw))
        except ValueError:
            raise Invalid("must be an IPv4 or IPv6 address") from None


@dataclass(frozen=True)
class Boolean:
    allowed = "`true`, `false` (also `1`/`0`, `yes`/`no`, `on`/`off`)"

    def parse(self, raw: str) -> bool:
        value = raw.lower()
        if value in ("true", "1", "yes", "on"):
            return True
        if value in ("false", "0", "no", "off"):
            return False
        raise Invalid("must be true or false")


_REFERENCE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*)?")


@dataclass(frozen=True)
class Reference:
    """`package.module:attribute`, as gunicorn names an app."""

    allowed = "`module:attribute`"

    def parse(self, raw: str) -> str:
        if not _REFERENCE.fullmatch(raw):
            raise Invalid("must be a Python reference like package.module:attribute")
        return raw


# -- declarations ---------------------------------------------------------------------------------

Default = Any  # a value, or a function of the settings read before this one


@dataclass(frozen=True)
class Setting:
    """One setting's declaration, kept in its dataclass field's metadata."""

    variable: str
    kind: Kind
    default: Default
    description: str
    # How the README shows a default that is computed, or that reads better in words.
    shown_default: str | None = None

    def default_for(self, earlier: Mapping[str, Any]) -> Any:
        """The default, computed from the settings read before this one when it is a function."""
        return self.default(earlier) if callable(self.default) else self.default

    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if self.default in ("", ()):
            return "unset"
        return f"`{self.default}`"


_SETTING = "courier.setting"


def setting(
    variable: str,
    kind: Kind,
    default: Default,
    description: str,
    *,
    shown_default: str | None = None,
) -> Any:
    """A dataclass field read from `variable` by `load()`."""
    declared = Setting(variable, kind, default, description, shown_default)
    return dataclasses.field(metadata={_SETTING: declared})


def declarations(cls: type) -> list[tuple[str, Setting]]:
    """(field name, declaration) of every setting of a settings dataclass, in order."""
    return [
        (field.name, field.metadata[_SETTING])
        for field in dataclasses.fields(cls)
        if _SETTING in field.metadata
    ]


SettingsT = TypeVar("SettingsT")


def load(cls: type[SettingsT], env: Mapping[str, str]) -> SettingsT:
    """Read every declared setting of `cls` from `env`: a blank or missing variable means the
    default; a bad value raises `ConfigError` naming the variable."""
    values: dict[str, Any] = {}
    for name, declared in declarations(cls):
        raw = env.get(declared.variable, "").strip()
        if not raw:
            values[name] = declared.default_for(values)
            continue
        try:
            values[name] = declared.kind.parse(raw)
        except Invalid as problem:
            raise ConfigError(declared.variable, str(problem)) from None
    return cls(**values)


def markdown_table(cls: type) -> str:
    """The README table of `cls`'s settings, rendered from their declarations."""
    rows = ["| Variable | Default | Allowed | Meaning |", "|---|---|---|---|"]
    for _, declared in declarations(cls):
        cells = (
            f"`{declared.variable}`",
            declared.default_text(),
            declared.kind.allowed,
            declared.description,
        )
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


# -- courier's own settings -----------------------------------------------------------------------


def is_redis_url(url: str) -> bool:
    return url.startswith(("redis://", "rediss://"))


def redis_tls_options(url: str) -> dict[str, Any] | None:
    """The TLS options of a `rediss://` URL (None for any other): its `ssl_*` query parameters,
    with the server's certificate verified unless `ssl_cert_reqs` says otherwise.

    Left to themselves, kombu would connect without verifying a certificate and Celery's result
    backend would refuse to start when a `rediss://` URL has no `ssl_cert_reqs`.
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return None
    import ssl

    query = dict(parse_qsl(parts.query))
    options: dict[str, Any] = {key: query[key] for key in REDIS_TLS_OPTIONS if key in query}
    cert_reqs = {
        "required": ssl.CERT_REQUIRED,
        "optional": ssl.CERT_OPTIONAL,
        "none": ssl.CERT_NONE,
    }
    options["ssl_cert_reqs"] = cert_reqs[query.get("ssl_cert_reqs", "required")]
    return options


def _result_backend(earlier: Mapping[str, Any]) -> str:
    broker: str = earlier["broker_url"]
    if is_redis_url(broker):
        return broker
    if broker.startswith("filesystem://"):
        data_dir: Path = earlier["data_dir"]
        return (data_dir / "results").as_uri()
    raise ConfigError(
        "RESULT_BACKEND", "required when BROKER_URL is not Redis (example: redis://redis:6379/1)"
    )


def _soft_time_limit(earlier: Mapping[str, Any]) -> int:
    # A tenth of the hard limit (at most 30 s) to clean up after SoftTimeLimitExceeded.
    hard: int = earlier["task_time_limit"]
    return max(1, hard - min(30, max(1, hard // 10)))


def _beat_lock_url(earlier: Mapping[str, Any]) -> str:
    urls = (earlier["broker_url"], earlier["result_backend"])
    return next((url for url in urls if is_redis_url(url)), "")


DAY: Final = 86400
DEFAULT_DATA_DIR: Final = Path("/tmp/courier")  # noqa: S108 - the image's tmpfs


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one courier process (business settings are the plugin's)."""

    mode: str = setting(
        "MODE", Choice(MODES), "all", "Role of this container (see [modes](#modes))."
    )
    plugin: str = setting(
        "PLUGIN",
        Reference(),
        DEFAULT_PLUGIN,
        "The business code to run: a `Plugin`, or a function of the environment that returns "
        "one (see [Make it yours](#make-it-yours)).",
    )
    host: str = setting(
        "HOST",
        Address(),
        "0.0.0.0",  # noqa: S104 - every interface of the container
        "Address the API listens on (`::` for IPv6 too).",
    )
    port: int = setting("PORT", Integer(1, 65535), 5001, "API port.")
    metrics_port: int = setting(
        "METRICS_PORT",
        Integer(0, 65535),
        9808,
        "Port of the Prometheus metrics of this container's role (0: no metrics at all). "
        "Unauthenticated: publish it only to your monitoring network.",
    )
    data_dir: Path = setting(
        "DATA_DIR",
        Directory(),
        DEFAULT_DATA_DIR,
        "Writable directory: embedded broker and results, beat schedule, liveness files, "
        "generated token. Not writable: exit 78.",
    )
    broker_url: str = setting(
        "BROKER_URL",
        Url(BROKER_SCHEMES),
        "filesystem://",
        "The broker. Required for `api`, `worker`, `beat`; `filesystem://` only with `MODE=all`.",
        shown_default="unset: embedded filesystem broker (`MODE=all` only)",
    )
    result_backend: str = setting(
        "RESULT_BACKEND",
        Url(BACKEND_SCHEMES),
        _result_backend,
        "Where results are kept (`file://` only with `MODE=all`). Required when the broker is "
        "RabbitMQ.",
        shown_default="`BROKER_URL` when it is Redis; a file backend under `DATA_DIR` when "
        "embedded",
    )
    api_tokens: tuple[str, ...] = setting(
        "API_TOKENS",
        Tokens(),
        (),
        "Bearer tokens of the API.",
        shown_default="unset: a token is generated per container; `courier token` prints it",
    )
    log_level: str = setting(
        "LOG_LEVEL",
        Choice(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), upper=True),
        "INFO",
        "Lowest level logged.",
    )
    log_format: str = setting(
        "LOG_FORMAT",
        Choice(("json", "console")),
        "json",
        "`json` (one object per line) or `console` (for local work).",
    )
    log_flush_interval: float = setting(
        "LOG_FLUSH_INTERVAL",
        Number(0, 5),
        0.1,
        "Seconds an info or debug line may wait to be written together with the lines after it "
        "(0: each line at once). Warnings and errors are always written at once; a process "
        "killed with SIGKILL loses at most this much of its info lines (see [Logs](#logs)).",
    )
    web_concurrency: int = setting("WEB_CONCURRENCY", Integer(1, 64), 2, "API worker processes.")
    worker_concurrency: int = setting(
        "WORKER_CONCURRENCY", Integer(1, 256), 2, "Celery worker processes per container."
    )
    max_body_bytes: int = setting(
        "MAX_BODY_BYTES",
        Integer(64, 16 * 1024 * 1024),
        65536,
        "Largest request body (larger: 413).",
    )
    prefer_wait_max: float = setting(
        "PREFER_WAIT_MAX",
        Number(0, 60),
        10.0,
        "Longest `Prefer: wait=N` the API honours, seconds (0: never waits). A waiting request "
        "holds a server thread.",
    )
    graceful_timeout: int = setting(
        "GRACEFUL_TIMEOUT",
        Integer(1, 3600),
        30,
        "Seconds requests in flight get to finish after SIGTERM.",
    )
    request_header_timeout: float = setting(
        "REQUEST_HEADER_TIMEOUT",
        Number(0.5, 300),
        10.0,
        "Seconds a client gets to send a request's line and headers, from its connection (or "
        "the first byte of its next request); later: 408 and closed.",
    )
    request_body_timeout: float = setting(
        "REQUEST_BODY_TIMEOUT",
        Number(0.5, 3600),
        30.0,
        "Seconds a client gets to send the whole body once its headers are in; later: 408 and "
        "closed.",
    )
    keepalive_timeout: int = setting(
        "KEEPALIVE_TIMEOUT",
        Integer(0, 3600),
        5,
        "Seconds an idle client connection stays open for another request (0: closed after "
        "each response). Behind a load balancer that reuses connections, set it above the "
        "balancer's idle timeout.",
    )
    web_threads: int = setting(
        "WEB_THREADS",
        Integer(1, 64),
        4,
        "Threads per API worker process, each serving one complete request at a time.",
    )
    task_time_limit: int = setting(
        "TASK_TIME_LIMIT",
        Integer(1, 7 * DAY),
        300,
        "Hard time limit of a job, seconds (the worker process is replaced).",
    )
    task_soft_time_limit: int = setting(
        "TASK_SOFT_TIME_LIMIT",
        Integer(1, 7 * DAY),
        _soft_time_limit,
        "Soft limit: raises `SoftTimeLimitExceeded` in the task; at most `TASK_TIME_LIMIT`.",
        shown_default="`TASK_TIME_LIMIT` minus a tenth of it (at most 30 s)",
    )
    result_expires: int = setting(
        "RESULT_EXPIRES",
        Integer(60, 365 * DAY),
        DAY,
        "Seconds results and job records are kept.",
    )
    visibility_timeout: int = setting(
        "VISIBILITY_TIMEOUT",
        Integer(1, 14 * DAY),
        3600,
        "Redis broker: seconds before an unacknowledged job is redelivered; must be longer than "
        "`TASK_TIME_LIMIT` (see [Reliability](#reliability)).",
    )
    broker_connect_timeout: float = setting(
        "BROKER_CONNECT_TIMEOUT",
        Number(0.1, 60),
        3.0,
        "Seconds to connect to the broker or backend before answering 503.",
    )
    broker_timeout: float = setting(
        "BROKER_TIMEOUT",
        Number(0.1, 60),
        3.0,
        "Seconds one call to a Redis broker, result backend or beat lock may take once "
        "connected: a request then answers 503 instead of waiting (a sick Redis never hangs it).",
    )
    task_events: bool = setting(
        "TASK_EVENTS",
        Boolean(),
        False,
        "Workers send task events (what Flower shows; Flower also switches them on itself).",
    )
    beat_lock_url: str = setting(
        "BEAT_LOCK_URL",
        Url(REDIS_SCHEMES),
        _beat_lock_url,
        "Redis holding beat's lock. Empty when neither broker nor backend is Redis: beat runs "
        "unlocked.",
        shown_default="the Redis broker or result backend",
    )
    beat_lock_timeout: int = setting(
        "BEAT_LOCK_TIMEOUT",
        Integer(3, 3600),
        30,
        "Seconds the beat lock lives without renewal: the takeover time after a crash.",
    )

    @property
    def embedded(self) -> bool:
        """True when no broker server is used: the filesystem transport under `data_dir`."""
        return self.broker_url.startswith("filesystem://")


def _check(settings: Settings, env: Mapping[str, str]) -> None:
    """Rules that tie settings together."""
    for name, ours in CELERY_OVERRIDES.items():
        value = env.get(name, "").strip()
        if value and value != env.get(ours, "").strip():
            raise ConfigError(name, f"would override {ours}; set {ours} instead")
    if settings.mode != "all":
        if not env.get("BROKER_URL", "").strip():
            raise ConfigError(
                "BROKER_URL",
                f"required when MODE={settings.mode}: the embedded broker serves only MODE=all "
                "(example: redis://redis:6379/0)",
            )
        for name, url in (
            ("BROKER_URL", settings.broker_url),
            ("RESULT_BACKEND", settings.result_backend),
        ):
            if url.startswith(("filesystem://", "file://")):
                raise ConfigError(name, "files in one container serve only MODE=all; use Redis")
    if settings.metrics_port == settings.port and settings.mode in ("api", "all"):
        raise ConfigError("METRICS_PORT", "must differ from PORT")
    if settings.task_soft_time_limit > settings.task_time_limit:
        raise ConfigError("TASK_SOFT_TIME_LIMIT", "must be at most TASK_TIME_LIMIT")
    if (
        is_redis_url(settings.broker_url)
        and settings.visibility_timeout <= settings.task_time_limit
    ):
        # A job still running when its message becomes visible again runs twice.
        raise ConfigError("VISIBILITY_TIMEOUT", "must be longer than TASK_TIME_LIMIT")


def read_dotenv(path: Path) -> dict[str, str]:
    """`.env` as Docker Compose reads it (quotes, escapes, `# comments`, `${VAR}` expansion)."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path, interpolate=True, encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ConfigError(DOTENV_FILE, "cannot be read as UTF-8 text") from None
    return {key: value for key, value in values.items() if value is not None}


def environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The effective environment: `.env` values overlaid by the real environment."""
    merged = read_dotenv(Path(DOTENV_FILE))
    merged.update(os.environ if environ is None else environ)
    return merged


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate courier's settings (`.env` and `environ`, by default the process's
    environment); raise `ConfigError` for the first bad variable."""
    return settings_from(environment(environ))


def settings_from(env: Mapping[str, str]) -> Settings:
    """courier's settings from an effective environment (see `environment`)."""
    settings = load(Settings, env)
    _check(settings, env)
    return settings


def setting_variables(*classes: type) -> frozenset[str]:
    """Every variable the given settings dataclasses read."""
    return frozenset(declared.variable for cls in classes for _, declared in declarations(cls))
