"""What every courier process does first: read the settings and load the plugin, once.

A bad setting or plugin ends the process with one line on stderr and exit code 78 (EX_CONFIG).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from courier import exitcodes
from courier.plugin import Plugin, load_plugin
from courier.settings import ConfigError, Settings, environment, settings_from


def boot(environ: Mapping[str, str] | None = None) -> tuple[Settings, Plugin]:
    """The settings and the plugin they name; raises `ConfigError`."""
    env = environment(environ)
    settings = settings_from(env)
    return settings, load_plugin(settings.plugin, env)


def report(error: ConfigError) -> int:
    """Print a configuration error as one line; the exit code to end with."""
    print(f"courier: configuration error: {error}", file=sys.stderr)
    return exitcodes.CONFIG


def boot_or_exit() -> tuple[Settings, Plugin]:
    """`boot()` for entry modules: a configuration error ends the process (exit code 78)."""
    try:
        return boot()
    except ConfigError as error:
        raise SystemExit(report(error)) from None
