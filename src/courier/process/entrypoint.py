"""The image's entrypoint: `courier [version|healthcheck|token]`, or with no argument the role
named by `MODE` (api, worker, beat, all).

A single role runs in this very process (gunicorn's master, or Celery's worker or beat, is PID 1
in a container and receives SIGTERM itself); `MODE=all` supervises the three as children. Errors
are one line on stderr and a sysexits code.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Sequence

from courier import exitcodes
from courier.boot import report
from courier.process.api_token import ensure_generated_token, generated_token_file
from courier.settings import MODES, ConfigError, Settings, environment, load_settings, settings_from

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
    from courier.process.healthcheck import is_healthy

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
        # `.env` values join the real environment (which wins): read once, for the roles too.
        os.environ.update(environment())
    except ConfigError as error:
        return report(error)
    mode = os.environ.get("MODE", "").strip().lower() or "all"
    if mode not in MODES:
        print(
            f"courier: unknown MODE {mode[:40]!r}; valid modes: {', '.join(MODES)}",
            file=sys.stderr,
        )
        return exitcodes.USAGE
    try:
        settings = settings_from(os.environ)
    except ConfigError as error:
        return report(error)
    from courier.process.exporter import prepare_multiprocess_dir, start_exporter

    needs_token = settings.mode in ("api", "all") and not settings.api_tokens
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        prepare_multiprocess_dir(settings)
        if needs_token:
            settings = dataclasses.replace(settings, api_tokens=(ensure_generated_token(settings),))
    except (OSError, ValueError):
        return report(ConfigError("DATA_DIR", "is not a writable directory of this user"))

    from courier.logs import configure_logging, get_logger

    configure_logging(settings)
    log = get_logger("courier.entrypoint")
    if needs_token:
        log.warning(
            "API_TOKENS is unset: generated an API token for this container; "
            "print it with `courier token` (docker exec CONTAINER courier token)",
        )
    log.info("starting", mode=settings.mode, embedded_broker=settings.embedded)
    # Forked before anything heavy is imported: the exporter stays small.
    start_exporter(settings)

    from courier.plugin import load_plugin

    try:
        plugin = load_plugin(settings.plugin, os.environ)
    except ConfigError as error:
        return report(error)

    from courier.process.roles import ROLES, run_role

    if settings.mode == "all":
        from courier.process.supervisor import supervise

        return supervise(
            {role: functools.partial(run_role, role, settings, plugin) for role in ROLES},
            # gunicorn's graceful timeout, and a margin for the worker's warm shutdown.
            stop_timeout=settings.graceful_timeout + 5,
        )
    return run_role(settings.mode, settings, plugin)


def _settings_or_exit() -> Settings | None:
    """The settings, or None after reporting the bad variable on stderr."""
    try:
        return load_settings()
    except ConfigError as error:
        report(error)
        return None


COMMANDS = {"run": run, "version": version, "healthcheck": healthcheck, "token": token}
