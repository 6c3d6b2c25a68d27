"""The entrypoint as the image runs it: `python -m courier [command]` in a real subprocess."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from courier.buildinfo import build_info
from courier.process.api_token import ensure_generated_token
from courier.settings import load_settings
from courier.testing.logs import parse_json_lines
from tests.conftest import free_port
from tests.unit.conftest import TOKEN, clean_environ, dead_redis_url

SECRET = "s3cretpass"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def courier(data_dir: Path) -> Run:
    """Run `python -m courier *args` with only the given courier variables (and DATA_DIR)."""

    def run(*args: str, timeout: float = 30, **environ: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "courier", *args],
            env=clean_environ(data_dir, **environ),
            cwd=data_dir.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# --- usage and configuration errors -------------------------------------------------------------


def test_unknown_mode_is_a_usage_error(courier: Run) -> None:
    result = courier(MODE="bogus")

    assert result.returncode == 64
    line = one_line(result.stderr)
    assert "bogus" in line
    for mode in ("api", "worker", "beat", "all"):
        assert mode in line
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_bad_port_is_a_configuration_error(courier: Run) -> None:
    result = courier(MODE="api", PORT="abc", BROKER_URL=dead_redis_url())

    assert result.returncode == 78
    line = one_line(result.stderr)
    assert "PORT" in line
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        (
            {"BROKER_URL": f"redis://:{SECRET}@127.0.0.1:1/0", "WORKER_CONCURRENCY": "0"},
            "WORKER_CONCURRENCY",
        ),
        ({"BROKER_URL": f"ftp://user:{SECRET}@broker"}, "BROKER_URL"),
        ({"BROKER_URL": f"amqp://user:{SECRET}@rabbit//"}, "RESULT_BACKEND"),
        ({"BROKER_URL": dead_redis_url(), "API_TOKENS": f"x-{SECRET}"}, "API_TOKENS"),
        ({}, "BROKER_URL"),
    ],
)
def test_worker_configuration_error_names_the_variable_and_hides_secrets(
    courier: Run, environ: dict[str, str], variable: str
) -> None:
    result = courier(MODE="worker", **environ)

    assert result.returncode == 78
    assert variable in one_line(result.stderr)
    assert SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("mode", ["api", "worker", "beat", "all"])
@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        ("no_such_package.plugin", "no module named 'no_such_package'"),
        ("courier.demo:no_such_attribute", "has no attribute 'no_such_attribute'"),
        ("courier.settings:DEFAULT_PLUGIN", "is not a courier Plugin"),
        ("courier.demo.tasks:add", "failed"),
    ],
)
def test_a_bad_plugin_is_a_configuration_error(
    courier: Run, mode: str, plugin: str, reason: str
) -> None:
    environ = {"MODE": mode, "PLUGIN": plugin, "API_TOKENS": TOKEN}
    if mode != "all":
        environ["BROKER_URL"] = dead_redis_url()
    result = courier(**environ, timeout=60)

    assert result.returncode == 78, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "PLUGIN" in errors[0]
    assert reason in errors[0]
    assert "Traceback" not in result.stderr


def test_a_bad_plugin_setting_is_a_configuration_error(courier: Run) -> None:
    result = courier(MODE="worker", BROKER_URL=dead_redis_url(), HEARTBEAT_INTERVAL="1e300")

    assert result.returncode == 78
    assert "HEARTBEAT_INTERVAL" in one_line(result.stderr)
    assert "Traceback" not in result.stderr


def test_version(courier: Run) -> None:
    result = courier("version")

    assert result.returncode == 0
    info = build_info()
    match = re.fullmatch(r"courier (\S+) \(commit (\S+), built (\S+)\)", result.stdout.strip())
    assert match is not None, result.stdout
    assert match.groups() == (info.version, info.commit, info.build_date)


@pytest.mark.parametrize("args", [["bogus"], ["version", "extra"], ["--version"], ["x" * 500]])
def test_unknown_command_is_a_usage_error(courier: Run, args: list[str]) -> None:
    result = courier(*args)

    assert result.returncode == 64
    assert "unknown command" in result.stderr
    assert "usage: courier" in result.stderr
    assert len(result.stderr) < 1000
    assert "Traceback" not in result.stderr


def test_help(courier: Run) -> None:
    result = courier("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: courier")
    assert "api, worker, beat, all" in result.stdout


# --- healthcheck --------------------------------------------------------------------------------


def test_api_healthcheck_fails_fast_when_nothing_listens(courier: Run) -> None:
    started = time.monotonic()
    result = courier("healthcheck", MODE="api", PORT=str(free_port()), BROKER_URL=dead_redis_url())

    assert result.returncode == 1
    assert time.monotonic() - started < 5


def test_healthcheck_with_a_bad_configuration_is_unhealthy(courier: Run) -> None:
    result = courier("healthcheck", MODE="worker", BROKER_URL=f"ftp://u:{SECRET}@h")

    assert result.returncode == 1
    assert "BROKER_URL" in one_line(result.stderr)
    assert SECRET not in result.stderr


def test_worker_healthcheck_reads_the_liveness_file(courier: Run, data_dir: Path) -> None:
    environ = {"MODE": "worker", "BROKER_URL": dead_redis_url()}
    alive = data_dir / "worker.alive"

    assert courier("healthcheck", **environ).returncode == 1

    alive.touch()
    assert courier("healthcheck", **environ).returncode == 0

    stale = time.time() - 3600
    os.utime(alive, (stale, stale))
    assert courier("healthcheck", **environ).returncode == 1


def test_beat_healthcheck_reads_the_liveness_file(courier: Run, data_dir: Path) -> None:
    """Not the pidfile: in a container beat is PID 1, and PID 1 always looks alive."""
    environ = {"MODE": "beat", "BROKER_URL": dead_redis_url()}
    (data_dir / "beat.pid").write_text("1\n", encoding="ascii")
    assert courier("healthcheck", **environ).returncode == 1

    alive = data_dir / "beat.alive"
    alive.touch()
    assert courier("healthcheck", **environ).returncode == 0

    stale = time.time() - 120
    os.utime(alive, (stale, stale))
    assert courier("healthcheck", **environ).returncode == 1


# --- the generated token ------------------------------------------------------------------------


def test_token_prints_the_generated_token(courier: Run, data_dir: Path) -> None:
    before = courier("token")
    assert before.returncode == 1
    assert before.stdout == ""
    assert "no token" in before.stderr

    settings = load_settings({"DATA_DIR": str(data_dir)})
    token = ensure_generated_token(settings)

    path = data_dir / "api-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32
    assert ensure_generated_token(settings) == token  # reused, not replaced
    after = courier("token")
    assert after.returncode == 0
    assert after.stdout == f"{token}\n"


def test_an_empty_token_file_left_by_a_kill_is_replaced(data_dir: Path) -> None:
    """Written whole under another name, then renamed: still, an empty file (a kill in an
    older version, a full disk) is never the token that every request must match."""
    settings = load_settings({"DATA_DIR": str(data_dir)})
    path = data_dir / "api-token"
    path.write_text("")
    path.chmod(0o600)

    token = ensure_generated_token(settings)

    assert len(token) >= 32
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in data_dir.iterdir()) == ["api-token"]  # no partial file left


def test_token_refers_to_api_tokens_when_they_are_set(courier: Run) -> None:
    result = courier("token", API_TOKENS=TOKEN)
    assert result.returncode == 1
    assert "API_TOKENS" in result.stderr
    assert TOKEN not in result.stdout + result.stderr


# --- starting servers ---------------------------------------------------------------------------


@contextlib.contextmanager
def started(data_dir: Path, log: Path, **environ: str) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m courier` in its own process group, killed with its group at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "courier"],
            env=clean_environ(data_dir, **environ),
            cwd=data_dir.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_until(
    check: Callable[[], bool], timeout: float, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"not ready within {timeout}s:\n{log.read_text()[-3000:]}")


def answers(url: str, **headers: str) -> bool:
    try:
        return requests.get(url, headers=headers, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def group_is_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def children_of(pid: int) -> list[int]:
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat_file.parent.name))
    return found


def test_api_mode_runs_gunicorn_in_the_entrypoint_process(data_dir: Path, tmp_path: Path) -> None:
    """The process started as `python -m courier` is gunicorn's master (a container's PID 1
    gets SIGTERM itself): its children are the web workers, and SIGTERM stops it cleanly."""
    port = free_port()
    log = tmp_path / "api.log"
    environ = {
        "MODE": "api",
        "PORT": str(port),
        "API_TOKENS": TOKEN[:24],
        "BROKER_URL": dead_redis_url(),
        "WEB_CONCURRENCY": "2",
        "GRACEFUL_TIMEOUT": "5",
        "METRICS_PORT": str(free_port()),
    }
    with started(data_dir, log, **environ) as process:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 20, process, log)
        # Its children: the two web workers (the first may answer before gunicorn has forked
        # the second), and the metrics exporter forked before them.
        wait_until(lambda: len(children_of(process.pid)) == 3, 20, process, log)
        children = set(children_of(process.pid))

        def booted() -> set[int]:
            return {
                int(str(line["event"]).split()[-1])
                for line in parse_json_lines(log.read_text())
                if "Booting worker" in str(line.get("event"))
            }

        # Info lines are written in batches: they may reach the log a moment later.
        wait_until(lambda: len(booted()) == 2, 5, process, log)
        assert booted() < children
        tasks = requests.get(
            f"http://127.0.0.1:{port}/v1/tasks",
            headers={"Authorization": f"Bearer {TOKEN[:24]}"},
            timeout=5,
        )
        assert tasks.status_code == 200

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert "Traceback" not in log.read_text()


def test_embedded_all_mode(data_dir: Path, tmp_path: Path, courier: Run) -> None:
    port = free_port()
    log = tmp_path / "all.log"
    environ = {
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "WORKER_CONCURRENCY": "1",
        "GRACEFUL_TIMEOUT": "5",
        "HEARTBEAT_INTERVAL": "2",
    }
    base = f"http://127.0.0.1:{port}"
    with started(data_dir, log, **environ) as process:
        wait_until(lambda: answers(f"{base}/healthz"), 30, process, log)

        token_file = data_dir / "api-token"
        token = token_file.read_text(encoding="ascii").strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{base}/v1/tasks", timeout=5).status_code == 401
        assert requests.get(f"{base}/v1/tasks", headers=auth, timeout=5).status_code == 200

        # The embedded worker runs a job end to end, with the request id in its log.
        request_id = f"all-mode-{uuid.uuid4().hex[:8]}"
        submitted = requests.post(
            f"{base}/v1/jobs",
            json={"task": "demo.add", "args": {"a": 2, "b": 3}},
            headers={**auth, "X-Request-ID": request_id},
            timeout=10,
        )
        assert submitted.status_code == 202
        job_url = base + submitted.headers["Location"]

        def succeeded() -> bool:
            body = requests.get(job_url, headers=auth, timeout=5).json()
            assert body["state"] in ("PENDING", "RECEIVED", "STARTED", "SUCCESS"), body
            return bool(body["state"] == "SUCCESS" and body["result"] == 5)

        wait_until(succeeded, 30, process, log)

        # Beat is up too: it sent demo.heartbeat, which the worker ran.
        def heartbeat_ran() -> bool:
            body = requests.get(f"{base}/v1/demo/heartbeat", headers=auth, timeout=5).json()
            return body["last_run"] is not None

        wait_until(heartbeat_ran, 30, process, log)
        wait_until(lambda: courier("healthcheck", **environ).returncode == 0, 30, process, log)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert group_is_gone(process.pid, timeout=30), "a child outlived the supervisor"

    output = log.read_text()
    assert token not in output
    lines = parse_json_lines(output)
    warnings = [line for line in lines if "API_TOKENS is unset" in str(line.get("event"))]
    assert len(warnings) == 1
    assert warnings[0]["level"] == "warning"
    added = [line for line in lines if line.get("event") == "added"]
    assert [line.get("request_id") for line in added] == [request_id]
    assert "Traceback" not in output


def test_all_mode_exits_70_when_a_role_dies(data_dir: Path, tmp_path: Path) -> None:
    """The API cannot bind its port: the supervisor stops the others and reports the failure."""
    log = tmp_path / "all.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with started(data_dir, log, PORT=str(port), API_TOKENS=TOKEN) as process:
            code = process.wait(timeout=90)
    output = log.read_text(errors="replace")
    assert code == 70, output[-3000:]
    assert any(
        line.get("event") == "a role exited; stopping the others" and line.get("role") == "api"
        for line in parse_json_lines(output)
    ), output[-3000:]
