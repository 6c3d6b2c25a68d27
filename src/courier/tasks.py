"""Declaring tasks without an app: `@task(name, public=True)` on a plain function.

    @task("demo.add", public=True)
    def add(
        a: Annotated[float, Param("first addend", minimum=-1e15, maximum=1e15)],
        b: Annotated[float, Param("second addend", minimum=-1e15, maximum=1e15)],
    ) -> float:
        '''Add two numbers.'''

The decorator only attaches a declaration and returns the function unchanged (a test calls it as
it is). At start-up the kit imports the plugin's task modules and registers every declared task on
its Celery app, so a task module never imports an app. A public task's signature is its one
declaration: the API's validation and error messages, the JSON Schema of `/v1/tasks` and of the
OpenAPI document, and the worker's check of every message all come from it.
"""

from __future__ import annotations

import importlib
import inspect
import math
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

ParamType = Literal["integer", "number", "string", "boolean"]
MAX_STRING_LENGTH: Final = 4096
_JSON_TYPES: Final[dict[type, ParamType]] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
}
_DECLARATION = "__courier_task__"

F = TypeVar("F", bound=Callable[..., Any])


class PublicError(Exception):
    """Raise it from a task to show its message to API clients; a job failing with any other
    exception shows only the exception's type."""


@dataclass(frozen=True)
class Param:
    """What a parameter's annotation adds to its type: `Annotated[float, Param(...)]`. Bounds
    apply to numbers; `max_length` to strings."""

    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = MAX_STRING_LENGTH


@dataclass(frozen=True)
class Parameter:
    """One parameter of a public task, as its signature declares it."""

    name: str
    type: ParamType
    required: bool = True
    param: Param = field(default_factory=Param)

    def check(self, value: Any) -> str | None:
        """The problem with `value`, or None when it is acceptable."""
        bounds = self.param
        if self.type == "boolean":
            return None if isinstance(value, bool) else "must be a boolean"
        if self.type == "string":
            if not isinstance(value, str):
                return "must be a string"
            if len(value) > bounds.max_length:
                return f"must be at most {bounds.max_length} characters"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {'an integer' if self.type == 'integer' else 'a number'}"
        if self.type == "integer" and not isinstance(value, int):
            return "must be an integer"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be finite"
        if bounds.minimum is not None and value < bounds.minimum:
            return f"must be at least {bounds.minimum:g}"
        if bounds.maximum is not None and value > bounds.maximum:
            return f"must be at most {bounds.maximum:g}"
        return None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type}
        if self.param.description:
            schema["description"] = self.param.description
        if self.type in ("integer", "number"):
            if self.param.minimum is not None:
                schema["minimum"] = self.param.minimum
            if self.param.maximum is not None:
                schema["maximum"] = self.param.maximum
        if self.type == "string":
            schema["maxLength"] = self.param.max_length
        return schema


@dataclass(frozen=True)
class TaskDeclaration:
    """A task as declared by `@task`: what the kit registers on Celery, and, when public, what
    clients may submit."""

    name: str
    run: Callable[..., Any]
    public: bool = False
    description: str = ""
    parameters: tuple[Parameter, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    def normalize(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """`args` as JSON Schema reads them: a whole float (`2.0`) given for an integer parameter
        is that integer, as the published schema promises."""
        integers = {p.name for p in self.parameters if p.type == "integer"}
        return {
            name: int(value)
            if name in integers and isinstance(value, float) and value.is_integer()
            else value
            for name, value in args.items()
        }

    def validate(self, args: Mapping[str, Any]) -> dict[str, str]:
        """Problems by parameter name; empty when `args` fits the declaration."""
        declared = {p.name: p for p in self.parameters}
        problems = {
            name: "is not a parameter of this task" for name in args if name not in declared
        }
        for parameter in self.parameters:
            if parameter.name not in args:
                if parameter.required:
                    problems[parameter.name] = "is required"
                continue
            problem = parameter.check(args[parameter.name])
            if problem:
                problems[parameter.name] = problem
        return problems

    def args_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {p.name: p.json_schema() for p in self.parameters},
            "required": [p.name for p in self.parameters if p.required],
            "additionalProperties": False,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.args_schema(),
        }


def task(name: str, *, public: bool = False, **options: Any) -> Callable[[F], F]:
    """Declare `run` as the Celery task `name`; `options` are Celery's task options (`bind`,
    `autoretry_for`, `max_retries`, ...). A public task can be submitted through the API, with
    the arguments its signature declares."""

    def declare(run: F) -> F:
        declaration = TaskDeclaration(
            name=name,
            run=run,
            public=public,
            description=(inspect.getdoc(run) or "").split("\n\n")[0].replace("\n", " "),
            parameters=parameters_of(run, bound=bool(options.get("bind"))) if public else (),
            options=dict(options),
        )
        setattr(run, _DECLARATION, declaration)
        return run

    return declare


def parameters_of(run: Callable[..., Any], *, bound: bool) -> tuple[Parameter, ...]:
    """The declared parameters of a public task's function (after `self` when bound)."""
    hints = typing.get_type_hints(run, include_extras=True)
    signature = list(inspect.signature(run).parameters.values())
    declared = []
    for parameter in signature[1:] if bound else signature:
        where = f"{run.__module__}.{run.__qualname__}, parameter {parameter.name!r}"
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise TypeError(f"{where}: a public task takes named parameters only")
        hint = hints.get(parameter.name)
        extra = Param()
        if typing.get_origin(hint) is typing.Annotated:
            hint, *metadata = typing.get_args(hint)
            extra = next((m for m in metadata if isinstance(m, Param)), extra)
        if hint not in _JSON_TYPES:
            raise TypeError(f"{where}: annotate it with int, float, str or bool")
        declared.append(
            Parameter(
                name=parameter.name,
                type=_JSON_TYPES[hint],
                required=parameter.default is parameter.empty,
                param=extra,
            )
        )
    return tuple(declared)


def declared_in(module_names: Iterable[str]) -> tuple[TaskDeclaration, ...]:
    """Every task declared in these modules (imported here), in order; a name declared twice
    is an error."""
    found: dict[str, TaskDeclaration] = {}
    for module_name in module_names:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            declaration = getattr(value, _DECLARATION, None)
            if not isinstance(declaration, TaskDeclaration) or declaration.run is not value:
                continue
            other = found.get(declaration.name)
            if other is not None and other is not declaration:
                raise ValueError(f"task {declaration.name!r} is declared twice")
            found[declaration.name] = declaration
    return tuple(found.values())


def public_catalog(declarations: Iterable[TaskDeclaration]) -> Mapping[str, TaskDeclaration]:
    """The tasks a client may submit, by name."""
    return {d.name: d for d in declarations if d.public}
