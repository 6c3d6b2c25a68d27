"""The image's entrypoint: `courier [version|healthcheck|token]`, or with no argument the role
named by `MODE` (api, worker, beat, all).

A single role replaces this process with its server (exec), so gunicorn or celery is PID 1 in a
container and receives SIGTERM directly. Errors are one line on stderr and a sysexits code.
"""

from __future__ import annotations

import os
import secrets
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

    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"courier: configuration error: {error}", file=sys.stderr)
        return exitcodes.UNHEALTHY
    return exitcodes.OK if is_healthy(settings) else exitcodes.UNHEALTHY


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
    mode = environment().get("MODE", "").strip().lower() or "all"
    if mode not in MODES:
        print(
            f"courier: unknown MODE {mode[:40]!r}; valid modes: {', '.join(MODES)}",
            file=sys.stderr,
        )
        return exitcodes.USAGE
    settings = _settings_or_exit()
    if settings is None:
        return exitcodes.CONFIG

    from courier.logs import configure_logging, get_logger

    configure_logging(settings)
    log = get_logger("courier.entrypoint")
    # Children read the same variables: make values from `.env` part of the real environment.
    for name, value in environment().items():
        os.environ.setdefault(name, value)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.mode in ("api", "all") and not settings.api_tokens:
        os.environ["API_TOKENS"] = ensure_generated_token(settings)
        log.warning(
            "API_TOKENS is unset: generated an API token for this container; "
            "print it with `courier token` (docker exec CONTAINER courier token)",
        )
    log.info("starting", mode=settings.mode, embedded_broker=settings.embedded)

    from courier.roles import command

    if settings.mode == "all":
        from courier.supervisor import supervise

        return supervise({role: command(role, settings) for role in ("api", "worker", "beat")})
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
    """A token kept in the data directory (mode 0600), reused when the container restarts."""
    path = generated_token_file(settings)
    if path.is_file():
        return path.read_text(encoding="ascii").strip()
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(value + "\n")
    return value


def _settings_or_exit() -> Settings | None:
    try:
        return load_settings()
    except ConfigError as error:
        print(f"courier: configuration error: {error}", file=sys.stderr)
        return None


COMMANDS = {"run": run, "version": version, "healthcheck": healthcheck, "token": token}
