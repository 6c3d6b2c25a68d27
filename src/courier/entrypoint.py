"""The image's entrypoint: `courier [version|healthcheck|token]`, or with no argument the role
named by `MODE` (api, worker, beat, all).

A single role replaces this process with its server (exec), so gunicorn or celery is PID 1 in a
container and receives SIGTERM directly. Errors are one line on stderr and a sysexits code.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from courier import exitcodes
from courier.config import MODES, ConfigError, Settings, environment, load_settings

USAGE = """\
usage: courier [COMMAND]

With no command, start the role named by MODE ({modes}); default: all.
commands:
  version      print version, commit and build date
  healthcheck  exit 0 when the role in this container is healthy, 1 if not
  token        print the API token generated when API_TOKENS is unset
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "run"
    if len(args) > 1 or command not in COMMANDS:
        if command in ("-h", "--help", "help"):
            print(USAGE.format(modes=", ".join(MODES)), end="")
            return exitcodes.OK
        print(f"courier: unknown command {command[:40]!r}", file=sys.stderr)
        print(USAGE.format(modes=", ".join(MODES)), end="", file=sys.stderr)
        return exitcodes.USAGE
    return COMMANDS[command]()


def version() -> int:
    from courier.buildinfo import build_info

    info = build_info()
    print(f"courier {info.version} (commit {info.commit}, built {info.build_date})")
    return exitcodes.OK


def healthcheck() -> int:
    from courier.healthcheck import is_healthy

    settings = _settings_or_exit()
    return exitcodes.OK if settings and is_healthy(settings) else exitcodes.UNHEALTHY


def token() -> int:
    settings = _settings_or_exit()
    if settings is None:
        return exitcodes.CONFIG
    if settings.api_tokens:
        print("courier: API_TOKENS is set; use one of those tokens", file=sys.stderr)
        return exitcodes.UNHEALTHY
    path = generated_token_file(settings)
    if not path.is_file():
        print("courier: no token was generated yet (the API has not started)", file=sys.stderr)
        return exitcodes.UNHEALTHY
    print(path.read_text(encoding="ascii").strip())
    return exitcodes.OK


def run() -> int:
    try:
        # `.env` values join the real environment (which wins), for the children too.
        for name, value in environment().items():
            os.environ.setdefault(name, value)
    except ConfigError as error:
        return _config_error(error)
    mode = os.environ.get("MODE", "").strip().lower() or "all"
    if mode not in MODES:
        print(
            f"courier: unknown MODE {mode[:40]!r}; valid modes: {', '.join(MODES)}",
            file=sys.stderr,
        )
        return exitcodes.USAGE
    settings = _settings_or_exit()
    if settings is None:
        return exitcodes.CONFIG
    needs_token = settings.mode in ("api", "all") and not settings.api_tokens
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if needs_token:
            os.environ["API_TOKENS"] = ensure_generated_token(settings)
    except (OSError, ValueError):
        return _config_error(ConfigError("DATA_DIR", "is not a writable directory of this user"))

    from courier.logs import configure_logging, get_logger

    configure_logging(settings)
    log = get_logger("courier.entrypoint")
    if needs_token:
        log.warning(
            "API_TOKENS is unset: generated an API token for this container; "
            "print it with `courier token` (docker exec CONTAINER courier token)",
        )
    log.info("starting", mode=settings.mode, embedded_broker=settings.embedded)

    from courier.roles import command

    if settings.mode == "all":
        from courier.supervisor import supervise

        return supervise(
            {role: command(role, settings) for role in ("api", "worker", "beat")},
            # gunicorn's graceful timeout, and a margin for the worker's warm shutdown.
            stop_timeout=settings.graceful_timeout + 5,
        )
    argv = command(settings.mode, settings)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(argv[0], argv)  # noqa: S606 - no shell: argv is ours
    except OSError as error:
        log.error("could not start the server", mode=settings.mode, error=str(error))
    return exitcodes.OSERR


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
        value = secrets.token_urlsafe(32)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with os.fdopen(os.open(path, flags, 0o600), "w", encoding="ascii") as handle:
            handle.write(value + "\n")
        return value
    if not stat.S_ISREG(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise ValueError(f"{path} is not a private file of this user")
    return path.read_text(encoding="ascii").strip()


def _config_error(error: ConfigError) -> int:
    print(f"courier: configuration error: {error}", file=sys.stderr)
    return exitcodes.CONFIG


def _settings_or_exit() -> Settings | None:
    """The settings, or None after reporting the bad variable on stderr."""
    try:
        return load_settings()
    except ConfigError as error:
        _config_error(error)
        return None


COMMANDS = {"run": run, "version": version, "healthcheck": healthcheck, "token": token}
