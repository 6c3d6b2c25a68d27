"""The public task catalog: the only tasks a client may submit, with their declared parameters.

A Celery app knows many tasks (its own `celery.*` internals included); the API must never let a
client name an arbitrary one. Business code marks a task public with `@public(...)`, declaring
each parameter's type and bounds; the API validates arguments against that declaration before
anything is queued, and publishes the catalog at `GET /v1/tasks` and in the OpenAPI document.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

ParamType = Literal["integer", "number", "string", "boolean"]
MAX_STRING_LENGTH: Final = 4096

T = TypeVar("T")


@dataclass(frozen=True)
class Param:
    """One declared parameter. Bounds apply to numbers; `max_length` to strings."""

    name: str
    type: ParamType
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = MAX_STRING_LENGTH
    required: bool = True

    def check(self, value: Any) -> str | None:
        """The problem with `value`, or None when it is acceptable."""
        if self.type == "boolean":
            return None if isinstance(value, bool) else "must be a boolean"
        if self.type == "string":
            if not isinstance(value, str):
                return "must be a string"
            if len(value) > self.max_length:
                return f"must be at most {self.max_length} characters"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {'an integer' if self.type == 'integer' else 'a number'}"
        if self.type == "integer" and not isinstance(value, int):
            return "must be an integer"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be finite"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}"
        return None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type}
        if self.description:
            schema["description"] = self.description
        if self.type in ("integer", "number"):
            if self.minimum is not None:
                schema["minimum"] = self.minimum
            if self.maximum is not None:
                schema["maximum"] = self.maximum
        if self.type == "string":
            schema["maxLength"] = self.max_length
        return schema


@dataclass(frozen=True)
class PublicTask:
    name: str
    description: str
    params: tuple[Param, ...] = field(default=())

    def normalize(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """`args` as JSON Schema reads them: a whole float (`2.0`) given for an integer parameter
        is that integer, as the published schema promises."""
        integers = {p.name for p in self.params if p.type == "integer"}
        return {
            name: int(value)
            if name in integers and isinstance(value, float) and value.is_integer()
            else value
            for name, value in args.items()
        }

    def validate(self, args: Mapping[str, Any]) -> dict[str, str]:
        """Problems by parameter name; empty when `args` fits the declaration."""
        declared = {p.name: p for p in self.params}
        problems = {
            name: "is not a parameter of this task" for name in args if name not in declared
        }
        for param in self.params:
            if param.name not in args:
                if param.required:
                    problems[param.name] = "is required"
                continue
            problem = param.check(args[param.name])
            if problem:
                problems[param.name] = problem
        return problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.args_schema(),
        }

    def args_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {p.name: p.json_schema() for p in self.params},
            "required": [p.name for p in self.params if p.required],
            "additionalProperties": False,
        }


class PublicError(Exception):
    """Raise it from a task to show its message to API clients; a job failing with any other
    exception shows only the exception's type."""


_CATALOG: dict[str, PublicTask] = {}


def public(description: str, *params: Param) -> Callable[[T], T]:
    """Declare a Celery task submittable through the API, under the name it is registered with.

    Apply it on top of `@app.task(name=...)`.
    """

    def register(task: T) -> T:
        name = str(getattr(task, "name", ""))
        if not name:
            raise TypeError("@public goes on top of a Celery task (@app.task)")
        if name in _CATALOG:
            raise ValueError(f"task {name!r} is already public")
        _CATALOG[name] = PublicTask(name=name, description=description, params=params)
        return task

    return register


def catalog() -> Mapping[str, PublicTask]:
    """Every public task by name (the task modules must be imported first)."""
    return dict(_CATALOG)
