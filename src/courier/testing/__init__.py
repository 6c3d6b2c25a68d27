"""Testing services built on courier, with testcontainers: `CourierContainer` (one role of an
image), `CourierStack` (a whole system with its broker, and the client of its API), and a pytest
plugin with the `courier_image` and `courier_stack` fixtures.

Installed with the `testing` extra (`pip install courier[testing]`); never in the runtime image.
Importing it starts nothing, and imports testcontainers only when a name below is first used
(pytest loads the plugin in every run of a project that has the extra).
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
    from courier.testing.stack import STACK_LABEL, CourierStack

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
    "JobFailedError",
    "default_rabbitmq_image",
    "default_redis_image",
    "parse_json_lines",
    "rabbitmq_container",
    "redis_container",
]
_SUBMODULES = ("client", "containers", "logs", "stack")


def __getattr__(name: str) -> Any:
    if name in __all__:
        for submodule in _SUBMODULES:
            module = importlib.import_module(f"courier.testing.{submodule}")
            if hasattr(module, name):
                return getattr(module, name)
    raise AttributeError(f"module 'courier.testing' has no attribute {name!r}")
