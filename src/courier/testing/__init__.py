"""Testing services built on courier, with testcontainers: `CourierContainer` (one role of an
image), `CourierStack` (a whole system with its broker, and the client of its API), and a pytest
plugin with the `courier_image` and `courier_stack` fixtures.

Its dependencies come with the `testing` extra (`pip install courier[testing]`); never in the
runtime image. The package itself is in every install, and pytest loads its plugin wherever
courier is installed (an entry point cannot depend on an extra): so importing it starts nothing
and imports testcontainers only when a name below is first used; without the extra, that raises
`MissingExtraError` (a `ModuleNotFoundError`) saying what to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from courier.testing.client import CourierApiError, CourierClient, JobFailedError
    from courier.testing.containers import (
        HARDENING,
        LABEL,
        CourierContainer,
        CourierReady,
        CourierStartError,
        default_rabbitmq_image,
        default_redis_image,
        rabbitmq_container,
        redis_container,
    )
    from courier.testing.logs import parse_json_lines
    from courier.testing.stack import STACK_LABEL, CourierStack, CourierStopError

# Each public name and its submodule (client and logs need no testcontainers).
_SUBMODULES = {
    "HARDENING": "containers",
    "LABEL": "containers",
    "STACK_LABEL": "stack",
    "CourierApiError": "client",
    "CourierClient": "client",
    "CourierContainer": "containers",
    "CourierReady": "containers",
    "CourierStack": "stack",
    "CourierStartError": "containers",
    "CourierStopError": "stack",
    "JobFailedError": "client",
    "default_rabbitmq_image": "containers",
    "default_redis_image": "containers",
    "parse_json_lines": "logs",
    "rabbitmq_container": "containers",
    "redis_container": "containers",
}
__all__ = [
    "HARDENING",
    "LABEL",
    "STACK_LABEL",
    "CourierApiError",
    "CourierClient",
    "CourierContainer",
    "CourierReady",
    "CourierStack",
    "CourierStartError",
    "CourierStopError",
    "JobFailedError",
    "default_rabbitmq_image",
    "default_redis_image",
    "parse_json_lines",
    "rabbitmq_container",
    "redis_container",
]
# What the `testing` extra installs: without them, the error says to install it.
EXTRA_MODULES = frozenset({"testcontainers", "docker"})
INSTALL_HINT = "courier.testing needs the `testing` extra: pip install 'courier[testing]'"


class MissingExtraError(ModuleNotFoundError):
    """courier is installed without its `testing` extra (`name` is the module missing)."""


def import_submodule(submodule: str) -> Any:
    """`courier.testing.<submodule>`; `MissingExtraError` (a `ModuleNotFoundError` saying
    what to install) when the extra is not installed."""
    try:
        return importlib.import_module(f"courier.testing.{submodule}")
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in EXTRA_MODULES:
            raise
        raise MissingExtraError(
            f"{INSTALL_HINT} (no module named {error.name!r})", name=error.name
        ) from error


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return getattr(import_submodule(_SUBMODULES[name]), name)
    raise AttributeError(f"module 'courier.testing' has no attribute {name!r}")
