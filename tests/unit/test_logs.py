"""Logging: one access line per request, JSON by default, readable console lines on request."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from courier.logs import configure_logging, get_logger
from tests.unit.conftest import AUTH, ClientFactory, SettingsFactory


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


@pytest.mark.usefixtures("restore_logging")
def test_one_json_access_line_per_request(
    make_settings: SettingsFactory, make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(make_settings())
    client = make_client()
    capsys.readouterr()

    client.simulate_get("/healthz", headers={"X-Request-ID": "access-log-req-1"})

    (line,) = json_lines(capsys.readouterr().out)
    assert line["event"] == "request"
    assert line["logger"] == "courier.access"
    assert line["level"] == "info"
    assert line["method"] == "GET"
    assert line["path"] == "/healthz"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float | int)
    assert 0 <= line["duration_ms"] < 5000
    assert line["request_id"] == "access-log-req-1"
    assert line["timestamp"].endswith("Z")


@pytest.mark.usefixtures("restore_logging")
def test_access_line_of_a_failed_request_has_its_status_and_generated_id(
    make_settings: SettingsFactory, make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(make_settings())
    client = make_client()
    capsys.readouterr()

    results = [
        client.simulate_post("/v1/jobs", body="{", headers={**AUTH, "Content-Type": "text/plain"}),
        client.simulate_get("/v1/tasks"),
        client.simulate_get("/nowhere"),
    ]

    lines = json_lines(capsys.readouterr().out)
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/v1/jobs", 415),
        ("GET", "/v1/tasks", 401),
        ("GET", "/nowhere", 404),
    ]
    assert [line["request_id"] for line in lines] == [
        result.headers["x-request-id"] for result in results
    ]


@pytest.mark.usefixtures("restore_logging")
def test_request_id_does_not_leak_into_later_lines(
    make_settings: SettingsFactory, make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(make_settings())
    make_client().simulate_get("/healthz", headers={"X-Request-ID": "finished-request-1"})
    capsys.readouterr()

    get_logger("courier.test").info("after the request")

    (line,) = json_lines(capsys.readouterr().out)
    assert line["event"] == "after the request"
    assert "request_id" not in line


@pytest.mark.usefixtures("restore_logging")
def test_standard_library_loggers_render_through_the_same_format(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(make_settings(LOG_LEVEL="warning"))
    capsys.readouterr()

    logging.getLogger("gunicorn.error").warning("worker %s booted", 7)
    logging.getLogger("celery.worker").info("below the level")

    (line,) = json_lines(capsys.readouterr().out)
    assert line["event"] == "worker 7 booted"
    assert line["logger"] == "gunicorn.error"
    assert line["level"] == "warning"


@pytest.mark.usefixtures("restore_logging")
def test_exceptions_are_rendered_inside_the_json_line(
    make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(make_settings())
    capsys.readouterr()

    try:
        raise RuntimeError("kaboom")
    except RuntimeError:
        get_logger("courier.test").exception("failed")

    (line,) = json_lines(capsys.readouterr().out)
    assert line["event"] == "failed"
    assert "RuntimeError: kaboom" in line["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_console_format(
    make_settings: SettingsFactory, make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(make_settings(LOG_FORMAT="console"))
    client = make_client()
    capsys.readouterr()

    client.simulate_get("/healthz", headers={"X-Request-ID": "console-req-01"})

    out = capsys.readouterr().out
    (line,) = out.splitlines()
    assert not line.startswith("{")
    assert "request" in line
    for field in ("method=GET", "path=/healthz", "status=200", "request_id=console-req-01"):
        assert field in line
    assert "duration_ms=" in line
