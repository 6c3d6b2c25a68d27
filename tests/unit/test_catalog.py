"""The public task catalog: parameter checks and argument validation."""

from __future__ import annotations

import math
from typing import Any

import pytest

from courier.catalog import MAX_STRING_LENGTH, Param, PublicTask, catalog, public

NUMBER = Param("x", "number", minimum=-10, maximum=10)
INTEGER = Param("n", "integer", minimum=0, maximum=3)
STRING = Param("s", "string", max_length=5)
BOOLEAN = Param("b", "boolean")


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
def test_param_check(param: Param, value: Any, problem: str | None) -> None:
    assert param.check(value) == problem


def test_unbounded_number_still_rejects_non_finite() -> None:
    free = Param("f", "number")
    assert free.check(1e308) is None
    assert free.check(-1e308) is None
    assert free.check(math.inf) == "must be finite"


def test_strings_are_limited_by_default() -> None:
    text = Param("t", "string")
    assert text.check("x" * MAX_STRING_LENGTH) is None
    assert text.check("x" * (MAX_STRING_LENGTH + 1)) is not None


TASK = PublicTask(
    "t.example",
    "example",
    (Param("a", "number"), Param("flag", "boolean", required=False)),
)


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


def test_args_schema_is_closed_and_lists_required_params() -> None:
    schema = TASK.args_schema()
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["a"]
    assert set(schema["properties"]) == {"a", "flag"}
    assert Param("n", "integer", "count", minimum=0, maximum=3).json_schema() == {
        "type": "integer",
        "description": "count",
        "minimum": 0,
        "maximum": 3,
    }
    assert Param("s", "string", max_length=7).json_schema() == {"type": "string", "maxLength": 7}


def test_demo_tasks_are_public_and_the_heartbeat_is_not() -> None:
    import courier.demo.tasks  # noqa: F401 - registers the public tasks

    public_tasks = catalog()
    assert set(public_tasks) == {"demo.add", "demo.sleep", "demo.flaky"}
    assert public_tasks["demo.sleep"].validate({"seconds": 61}) == {"seconds": "must be at most 60"}


def test_a_name_cannot_be_made_public_twice() -> None:
    from courier.demo.tasks import add

    with pytest.raises(ValueError, match=r"demo\.add"):
        public("again")(add)
    assert catalog()["demo.add"].description == "Add two numbers."


def test_public_takes_the_name_the_task_is_registered_with() -> None:
    with pytest.raises(TypeError, match="Celery task"):
        public("not a task")(lambda: None)


def test_whole_floats_are_integers_as_json_schema_reads_them() -> None:
    task = PublicTask("t", "", (INTEGER, NUMBER))
    assert task.normalize({"n": 2.0, "x": 2.0}) == {"n": 2, "x": 2.0}
    assert isinstance(task.normalize({"n": 2.0})["n"], int)
    assert task.normalize({"n": 2.5}) == {"n": 2.5}
    assert task.validate(task.normalize({"n": 2.5, "x": 1})) == {"n": "must be an integer"}
    assert task.normalize({"n": True}) == {"n": True}
