"""What a worker runs, whoever queued it: only declared tasks, with declared arguments, and
results that are valid JSON. Tasks run through Celery's own tracer, storing into the real file
result backend, as a worker runs them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from falcon import testing

from courier.api.app import create_app
from courier.plugin import Plugin
from courier.queue.app import CourierCelery, create_celery
from courier.queue.trust import BACKEND_CLEANUP
from courier.tasks import task
from tests.unit.conftest import AUTH, SettingsFactory, celery_for, dead_redis_url


@task("unit.not_json", public=True)
def not_json(value: str) -> float:
    """Return a number that JSON has no word for."""
    return float(value)


@pytest.fixture
def demo(make_settings: SettingsFactory) -> Iterator[CourierCelery]:
    celery = celery_for(make_settings())
    celery.conf.task_store_eager_result = True
    yield celery
    celery.close()


def run(celery: CourierCelery, name: str, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """Run a registered task as a worker would (Celery's tracer, result stored); its state and
    result (or exception) as the result backend holds them."""
    task_id = str(uuid.uuid4())
    celery.tasks[name].apply(args=args, kwargs=kwargs, task_id=task_id)
    meta = celery.backend.get_task_meta(task_id)
    return meta["status"], meta["result"]


def test_only_public_and_periodic_tasks_are_registered(demo: CourierCelery) -> None:
    registered = set(demo.tasks)
    assert registered == {
        "demo.add",
        "demo.sleep",
        "demo.flaky",
        "demo.fail",
        "demo.heartbeat",
        BACKEND_CLEANUP,  # the embedded file backend's results expire only when it runs
    }
    assert not {"celery.chord_unlock", "celery.chain", "celery.group"} & registered


def test_celerys_result_cleanup_is_refused_where_beat_never_sends_it(
    make_settings: SettingsFactory,
) -> None:
    """Redis expires results itself: a `celery.backend_cleanup` message is no job of ours."""
    celery = celery_for(make_settings(MODE="worker", BROKER_URL=dead_redis_url()))
    try:
        assert BACKEND_CLEANUP not in set(celery.tasks)
        assert "demo.heartbeat" in set(celery.tasks)
    finally:
        celery.close()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {"a": "1", "b": 2}, "a: must be a number"),
        ((), {"a": 1}, "b: is required"),
        ((), {"a": 1, "b": 2, "c": 3}, "c: is not a parameter of this task"),
        ((1, 2), {}, "arguments: must be named"),
        ((), {"a": float("nan"), "b": 1}, "a: must be finite"),
        ((), {"a": 1e16, "b": 1}, "a: must be at most 1e+15"),
    ],
)
def test_arguments_that_do_not_fit_fail_the_job_before_it_runs(
    demo: CourierCelery, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    state, error = run(demo, "demo.add", *args, **kwargs)
    assert state == "FAILURE"
    assert type(error).__name__ == "InvalidArguments"
    assert message in str(error)


def test_arguments_that_fit_run_normalized(demo: CourierCelery) -> None:
    assert run(demo, "demo.add", a=2.0, b=40) == ("SUCCESS", 42.0)
    assert run(demo, "demo.flaky", failures=0.0) == ("SUCCESS", {"attempts": 1})


@pytest.fixture
def strict(make_settings: SettingsFactory) -> Iterator[tuple[CourierCelery, testing.TestClient]]:
    settings = make_settings()
    plugin = Plugin(name="strict", task_modules=(__name__,))
    celery = create_celery(settings, plugin)
    celery.conf.task_store_eager_result = True
    yield celery, testing.TestClient(create_app(settings, celery, plugin))
    celery.close()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_result_that_is_not_json_fails_the_job_and_reads_back_as_json(
    strict: tuple[CourierCelery, testing.TestClient], value: str, data_dir: Path
) -> None:
    celery, client = strict
    submitted = client.simulate_post(
        "/v1/jobs", json={"task": "unit.not_json", "args": {"value": value}}, headers=AUTH
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json["id"]
    celery.tasks["unit.not_json"].apply(kwargs={"value": value}, task_id=job_id)

    result = client.simulate_get(f"/v1/jobs/{job_id}", headers=AUTH)
    assert result.status_code == 200
    body = json.loads(result.text)  # strict: the standard library would accept NaN
    assert json.loads(result.text, parse_constant=lambda name: pytest.fail(name)) == body
    assert body["state"] == "FAILURE"
    assert body["error"]["type"] == "EncodeError"
    for stored in (data_dir / "results").iterdir():
        json.loads(stored.read_text(), parse_constant=lambda name: pytest.fail(name))
