"""Declared tasks: parameters from signatures, argument checks, the demo's catalog."""

from __future__ import annotations

import math
from typing import Annotated, Any

import pytest

from courier.demo.tasks import add
from courier.tasks import (
    MAX_STRING_LENGTH,
    Param,
    Parameter,
    TaskDeclaration,
    declared_in,
    public_catalog,
    task,
)
from tests.unit.conftest import demo_plugin

NUMBER = Parameter("x", "number", param=Param(minimum=-10, maximum=10))
INTEGER = Parameter("n", "integer", param=Param(minimum=0, maximum=3))
STRING = Parameter("s", "string", param=Param(max_length=5))
BOOLEAN = Parameter("b", "boolean")


@pytest.mark.parametrize(
    ("param", "value", "problem"),
    [
        (NUMBER, 0, None),
        (NUMBER, -10, None),
        (NUMBER, 10, None),
        (NUMBER, 9.5, None),
        (NUMBER, 10.000001, "must be at most 10"),
        (NUMBER, -10.5, "must be at least -10"),
        (NUMBER, 10**400, "must be at most 10"),
        (NUMBER, True, "must be a number"),
        (NUMBER, False, "must be a number"),
        (NUMBER, "1", "must be a number"),
        (NUMBER, None, "must be a number"),
        (NUMBER, [1], "must be a number"),
        (NUMBER, math.inf, "must be finite"),
        (NUMBER, -math.inf, "must be finite"),
        (NUMBER, math.nan, "must be finite"),
        (INTEGER, 3, None),
        (INTEGER, 0, None),
        (INTEGER, 4, "must be at most 3"),
        (INTEGER, -1, "must be at least 0"),
        (INTEGER, 1.0, "must be an integer"),
        (INTEGER, 1.5, "must be an integer"),
        (INTEGER, True, "must be an integer"),
        (INTEGER, "2", "must be an integer"),
        (STRING, "", None),
        (STRING, "12345", None),
        (STRING, "123456", "must be at most 5 characters"),
        (STRING, 5, "must be a string"),
        (STRING, None, "must be a string"),
        (BOOLEAN, True, None),
        (BOOLEAN, False, None),
        (BOOLEAN, 1, "must be a boolean"),
        (BOOLEAN, "true", "must be a boolean"),
    ],
)
def test_parameter_check(param: Parameter, value: Any, problem: str | None) -> None:
    assert param.check(value) == problem


def test_unbounded_number_still_rejects_non_finite() -> None:
    free = Parameter("f", "number")
    assert free.check(1e308) is None
    assert free.check(-1e308) is None
    assert free.check(math.inf) == "must be finite"


def test_strings_are_limited_by_default() -> None:
    text = Parameter("t", "string")
    assert text.check("x" * MAX_STRING_LENGTH) is None
    assert text.check("x" * (MAX_STRING_LENGTH + 1)) is not None


@task("t.example", public=True)
def example(a: float, flag: bool = False) -> None:
    """An example.

    More words that are not the description.
    """


TASK: TaskDeclaration = example.__courier_task__  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "problems"),
    [
        ({"a": 1}, {}),
        ({"a": 1, "flag": True}, {}),
        ({}, {"a": "is required"}),
        ({"flag": False}, {"a": "is required"}),
        ({"a": 1, "b": 2}, {"b": "is not a parameter of this task"}),
        (
            {"a": True, "flag": 1, "zzz": None},
            {
                "a": "must be a number",
                "flag": "must be a boolean",
                "zzz": "is not a parameter of this task",
            },
        ),
    ],
)
def test_public_task_validate(args: dict[str, Any], problems: dict[str, str]) -> None:
    assert TASK.validate(args) == problems


def test_declaration_comes_from_the_signature_and_docstring() -> None:
    assert TASK.name == "t.example"
    assert TASK.public
    assert TASK.description == "An example."
    assert TASK.parameters == (
        Parameter("a", "number"),
        Parameter("flag", "boolean", required=False),
    )
    assert TASK.run is example  # the function itself, unchanged


def test_args_schema_is_closed_and_lists_required_params() -> None:
    schema = TASK.args_schema()
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["a"]
    assert set(schema["properties"]) == {"a", "flag"}
    count = Parameter("n", "integer", param=Param("count", minimum=0, maximum=3))
    assert count.json_schema() == {
        "type": "integer",
        "description": "count",
        "minimum": 0,
        "maximum": 3,
    }
    assert Parameter("s", "string", param=Param(max_length=7)).json_schema() == {
        "type": "string",
        "maxLength": 7,
    }


def test_bound_tasks_skip_self_and_read_annotated_bounds() -> None:
    @task("t.bound", public=True, bind=True, max_retries=2)
    def bound(self: Any, n: Annotated[int, Param("count", maximum=3)], label: str = "") -> None:
        """Bound."""

    declaration: TaskDeclaration = bound.__courier_task__  # type: ignore[attr-defined]
    assert [p.name for p in declaration.parameters] == ["n", "label"]
    assert declaration.parameters[0].param.maximum == 3
    assert declaration.options == {"bind": True, "max_retries": 2}


@pytest.mark.parametrize(
    "signature",
    [
        "def f(x): pass",
        "def f(x: list[int]): pass",
        "def f(*args: int): pass",
        "def f(**kwargs: int): pass",
        "def f(x: int, /): pass",
    ],
)
def test_a_public_task_must_declare_every_parameter(signature: str) -> None:
    namespace: dict[str, Any] = {}
    exec(signature, namespace)  # noqa: S102 - a fixed test signature
    with pytest.raises(TypeError, match="parameter"):
        task("t.bad", public=True)(namespace["f"])


def test_private_tasks_declare_no_parameters() -> None:
    @task("t.private")
    def private(anything: Any) -> None:
        pass

    assert private.__courier_task__.parameters == ()  # type: ignore[attr-defined]


def test_demo_tasks_are_public_and_the_heartbeat_is_not() -> None:
    catalog = demo_plugin().catalog()
    assert set(catalog) == {"demo.add", "demo.sleep", "demo.flaky", "demo.fail"}
    assert catalog["demo.sleep"].validate({"seconds": 61}) == {"seconds": "must be at most 60"}
    assert catalog["demo.add"].description == "Add two numbers."
    declared = {d.name for d in declared_in(["courier.demo.tasks"])}
    assert declared == {"demo.add", "demo.sleep", "demo.flaky", "demo.fail", "demo.heartbeat"}


def test_declared_tasks_stay_plain_functions() -> None:
    assert add(2, 40) == 42
    assert public_catalog(declared_in(["courier.demo.tasks"]))["demo.add"].run is add


def test_whole_floats_are_integers_as_json_schema_reads_them() -> None:
    declaration = TaskDeclaration("t", lambda: None, True, parameters=(INTEGER, NUMBER))
    assert declaration.normalize({"n": 2.0, "x": 2.0}) == {"n": 2, "x": 2.0}
    assert isinstance(declaration.normalize({"n": 2.0})["n"], int)
    assert declaration.normalize({"n": 2.5}) == {"n": 2.5}
    problems = declaration.validate(declaration.normalize({"n": 2.5, "x": 1}))
    assert problems == {"n": "must be an integer"}
    assert declaration.normalize({"n": True}) == {"n": True}
