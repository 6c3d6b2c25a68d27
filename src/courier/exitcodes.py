"""Exit codes from sysexits(3), so callers can tell a usage error from a bad configuration."""

from typing import Final

OK: Final = 0
UNHEALTHY: Final = 1
USAGE: Final = 64  # EX_USAGE: unknown MODE or subcommand
SOFTWARE: Final = 70  # EX_SOFTWARE: a role exited on its own in MODE=all
OSERR: Final = 71  # EX_OSERR: the server could not be started
CONFIG: Final = 78  # EX_CONFIG: a variable is invalid
