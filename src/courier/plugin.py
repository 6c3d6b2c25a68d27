"""The one interface between the kit and the business code it runs.

A business package exports a `Plugin` (or a function of the environment that returns one, to read
its own settings) and names it with the `PLUGIN` setting, `package.module:attribute`, the way
gunicorn names an app. The kit loads it at start-up and never imports business code otherwise.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from courier.redaction import redact
from courier.settings import ConfigError
from courier.tasks import TaskDeclaration, declared_in, public_catalog

if TYPE_CHECKING:
    from celery import Celery


class RouteTable(Protocol):
    """Where a plugin adds its HTTP resources (Falcon resources: `on_get`, `on_post`, ...)."""

    def add(self, path: str, resource: object) -> None: ...


@dataclass(frozen=True)
class Plugin:
    """What a business package gives the kit."""

    name: str
    # Modules whose `@courier.tasks.task` functions become the Celery tasks (every role imports
    # them).
    task_modules: tuple[str, ...] = ()
    # Celery beat entries (`beat_schedule` format): the periodic jobs beat sends.
    periodic_jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Adds the plugin's resources beside the kit's; called once when the API app is built.
    add_routes: Callable[[RouteTable, Celery], None] | None = None

    def tasks(self) -> tuple[TaskDeclaration, ...]:
        return declared_in(self.task_modules)

    def catalog(self) -> Mapping[str, TaskDeclaration]:
        """The public tasks, by name: all a client may submit."""
        return public_catalog(self.tasks())


PluginFactory = Callable[[Mapping[str, str]], Plugin]


def load_plugin(reference: str, environ: Mapping[str, str]) -> Plugin:
    """Import the plugin `reference` names (`module:attribute`, default attribute `plugin`) and
    its task modules. Anything wrong is a `ConfigError` of `PLUGIN` with a one-line reason."""
    module_name, _, attribute = reference.partition(":")
    attribute = attribute or "plugin"

    def _reason(error: Exception) -> str:
        """An exception in one short line, without anything of the environment that may be
        a secret (a plugin's error may quote a URL or a token it was given)."""
        text = str(error).splitlines()[0] if str(error) else ""
        text = redact(text, environ)[:200]
        return f"{type(error).__name__}: {text}" if text else type(error).__name__

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ConfigError("PLUGIN", f"no module named {error.name!r}") from None
    except Exception as error:
        raise ConfigError("PLUGIN", f"{module_name} failed to import: {_reason(error)}") from None
    target = getattr(module, attribute, None)
    if target is None:
        raise ConfigError("PLUGIN", f"{module_name} has no attribute {attribute!r}")
    if not isinstance(target, Plugin) and callable(target):
        try:
            target = target(environ)
        except ConfigError as error:  # the plugin's own settings, which it may have quoted
            raise ConfigError(error.variable, redact(error.problem, environ)) from None
        except Exception as error:
            raise ConfigError("PLUGIN", f"{reference} failed: {_reason(error)}") from None
    if not isinstance(target, Plugin):
        raise ConfigError("PLUGIN", f"{reference} is not a courier Plugin")
    try:
        declared = {declaration.name for declaration in target.tasks()}
    except Exception as error:
        raise ConfigError(
            "PLUGIN", f"a task module of {reference} failed: {_reason(error)}"
        ) from None
    for job, entry in target.periodic_jobs.items():
        if entry.get("task") not in declared:
            raise ConfigError("PLUGIN", f"periodic job {job!r} names no task of the plugin")
    return target
