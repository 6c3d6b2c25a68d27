"""Logging: one access line per request, JSON by default, readable console lines on request."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from courier import logs
from courier.logs import configure_logging, get_logger
from tests.unit.conftest import AUTH, ClientFactory, SettingsFactory, dead_redis_url


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

    client.simulate_get("/version", headers={"X-Request-ID": "access-log-req-1"})

    (line,) = json_lines(capsys.readouterr().out)
    assert line["event"] == "request"
    assert line["logger"] == "courier.access"
    assert line["level"] == "info"
    assert line["method"] == "GET"
    assert line["path"] == "/version"
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
def test_health_probes_are_logged_only_when_they_fail(
    make_settings: SettingsFactory, make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(make_settings())
    healthy, sick = make_client(), make_client(BROKER_URL=dead_redis_url())
    capsys.readouterr()

    assert healthy.simulate_get("/healthz").status_code == 200
    assert healthy.simulate_get("/readyz").status_code == 200
    assert sick.simulate_get("/readyz").status_code == 503

    access = [line for line in json_lines(capsys.readouterr().out) if line["event"] == "request"]
    assert [(line["path"], line["status"]) for line in access] == [("/readyz", 503)]


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

    client.simulate_get("/version", headers={"X-Request-ID": "console-req-01"})

    out = capsys.readouterr().out
    (line,) = out.splitlines()
    assert not line.startswith("{")
    assert "request" in line
    for field in ("method=GET", "path=/version", "status=200", "request_id=console-req-01"):
        assert field in line
    assert "duration_ms=" in line


class _Writes:
    """A stdout that records each write."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None: ...


def batched_into_writes(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch, interval: str
) -> _Writes:
    """Logging configured in batches of `interval` seconds, into a stdout that records each
    write."""
    stdout = _Writes()
    monkeypatch.setattr(sys, "stdout", stdout)
    configure_logging(make_settings(LOG_FLUSH_INTERVAL=interval))
    return stdout


@pytest.mark.usefixtures("restore_logging")
def test_batched_info_lines_go_out_together_and_warnings_at_once(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout = batched_into_writes(make_settings, monkeypatch, "5")
    log = get_logger("courier.test")

    for number in range(3):
        log.info("line", number=number)
    assert stdout.writes == []  # waiting for more lines (five seconds at most)
    log.warning("at once")
    logging.getLogger("celery.worker").error("at once too")
    assert [[line["event"] for line in json_lines(text)] for text in stdout.writes] == [
        ["line", "line", "line", "at once"],
        ["at once too"],
    ]


@pytest.mark.usefixtures("restore_logging")
def test_a_waiting_line_is_written_within_the_flush_interval(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout = batched_into_writes(make_settings, monkeypatch, "0.05")
    began = time.monotonic()
    get_logger("courier.test").info("alone")
    while not stdout.writes and time.monotonic() - began < 10:
        time.sleep(0.01)
    took = time.monotonic() - began
    monkeypatch.undo()  # print to the real stdout again
    print(f"\nan info line alone was written {took:.3f}s later")
    assert [line["event"] for line in json_lines("".join(stdout.writes))] == ["alone"]


@pytest.mark.usefixtures("restore_logging")
def test_a_batch_goes_out_in_writes_no_pipe_splits(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The processes of a container share one pipe: a write of at most 4096 bytes is never
    interleaved with another process's, so a batch is cut into such writes, at line ends."""
    stdout = batched_into_writes(make_settings, monkeypatch, "5")
    log = get_logger("courier.test")
    for number in range(300):
        log.info("line", number=number, padding="é" * 40)
    log.info("long", padding="x" * 6000)  # longer than a write: on its own
    logs.flush()

    sizes = [len(text.encode()) for text in stdout.writes]
    monkeypatch.undo()
    print(f"\n301 lines in {len(sizes)} writes of {min(sizes)} to {max(sizes)} bytes")
    assert all(text.endswith("\n") for text in stdout.writes)
    assert max(sizes[:-1]) <= 4096
    assert sizes[-1] > 6000
    lines = json_lines("".join(stdout.writes))
    assert [line.get("number") for line in lines[:-1]] == list(range(300))


@pytest.mark.usefixtures("restore_logging")
def test_a_forked_child_never_repeats_its_parents_waiting_lines(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with (tmp_path / "out").open("a", encoding="utf-8") as out:
        monkeypatch.setattr(sys, "stdout", out)
        configure_logging(make_settings(LOG_FLUSH_INTERVAL="0.1"))
        log = get_logger("courier.test")
        log.info("parent, before the fork")
        pid = os.fork()
        if pid == 0:  # the child: ends without atexit, as pool processes do
            log.info("child")
            logs.flush()
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        log.info("parent, after the fork")
        logs.flush()
    events = [line["event"] for line in json_lines((tmp_path / "out").read_text())]
    assert events == ["parent, before the fork", "child", "parent, after the fork"]


def test_a_batched_process_writes_its_last_lines_at_exit(tmp_path: Path) -> None:
    code = (
        "from courier.logs import configure_logging, get_logger\n"
        "from courier.settings import load_settings\n"
        f"configure_logging(load_settings({{'DATA_DIR': {str(tmp_path)!r}}}))\n"
        "get_logger('courier.test').info('last words')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert [line["event"] for line in json_lines(result.stdout)] == ["last words"]
