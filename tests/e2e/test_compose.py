"""The real compose.yaml, driven from pytest as a user runs it: `up -d --wait --scale worker=3`
from a project directory holding compose.yaml and the user's `.env` (API_TOKENS), with the image
that bake built. Also: the compose file is valid, and bake's default group is one target (bake,
called with `-f docker-bake.hcl`, does not merge compose.yaml's services in).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from courier.testing import default_redis_image
from tests.conftest import failed, free_port
from tests.e2e.compose import ComposeProject, compose_environment, run
from tests.e2e.system import NONROOT, events, is_worker_ready, wait_for_lines
from tests.stack import ApiClient

COURIER_SERVICES = ("api", "worker", "beat")
PROJECT_LABEL = "com.docker.compose.project"
COMPOSE = ("docker", "compose", "-f", "compose.yaml")
WORKERS = 3

pytestmark = pytest.mark.timeout(420)


def test_compose_file_is_valid() -> None:
    env = compose_environment({"COURIER_IMAGE": "courier:e2e-config-check"})
    run(["docker", "compose", "-f", "compose.yaml", "config", "--quiet"], env, 60)
    config = json.loads(
        run(
            ["docker", "compose", "-f", "compose.yaml", "config", "--format", "json"], env, 60
        ).stdout
    )
    services = config["services"]
    # Profiles keep rabbitmq and flower out unless asked for.
    assert set(services) == {"api", "worker", "beat", "redis"}
    for name in COURIER_SERVICES:
        service = services[name]
        assert service["image"] == "courier:e2e-config-check"
        assert service["environment"]["MODE"] == name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert service["user"] == f"{NONROOT}:{NONROOT}"
        assert service["healthcheck"]["test"] == [
            "CMD",
            "/opt/venv/bin/python",
            "-m",
            "courier",
            "healthcheck",
        ]
    assert [(p["host_ip"], p["target"]) for p in services["api"]["ports"]] == [("127.0.0.1", 5001)]
    with_profiles = json.loads(
        run(
            [*COMPOSE, "--profile", "rabbitmq", "config", "--format", "json"],
            env,
            60,
        ).stdout
    )
    assert "rabbitmq" in with_profiles["services"]
    monitoring = json.loads(
        run([*COMPOSE, "--profile", "monitoring", "config", "--format", "json"], env, 60).stdout
    )["services"]
    assert {"prometheus", "flower"} <= set(monitoring)
    assert [(p["host_ip"], p["target"]) for p in monitoring["prometheus"]["ports"]] == [
        ("127.0.0.1", 9090)
    ]


def test_bake_default_group_is_the_image_target_only() -> None:
    result = run(
        ["docker", "buildx", "bake", "-f", "docker-bake.hcl", "--print"],
        compose_environment({}),
        60,
    )
    printed = json.loads(result.stdout)
    assert printed["group"]["default"]["targets"] == ["image"]
    assert list(printed["target"]) == ["image"], list(printed["target"])
    assert printed["target"]["image"]["dockerfile"] == "docker/Dockerfile"
    print(f"\n[e2e] bake default group: {printed['group']['default']['targets']}")


class EventLog:
    """`docker events` for one compose project, recorded from before `up` until `stop()`."""

    def __init__(self, project: str, path: Path) -> None:
        self.path = path
        self._out = path.open("w", encoding="utf-8")
        # --since: events between now and the subscription taking effect are replayed too.
        since = f"{time.time() - 1:.3f}"
        self._process = subprocess.Popen(
            [
                "docker",
                "events",
                "--since",
                since,
                "--filter",
                "type=container",
                "--filter",
                f"label={PROJECT_LABEL}={project}",
                "--format",
                "{{json .}}",
            ],
            stdout=self._out,
            stderr=subprocess.DEVNULL,
        )

    def read(self) -> list[dict[str, Any]]:
        """The events recorded so far (complete lines only: the stream may be mid-line)."""
        text = self.path.read_text(encoding="utf-8")
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def wait_until_healthy(self, names: set[str], timeout: float) -> None:
        """Poll until every container in `names` has a `health_status: healthy` event."""
        deadline = time.monotonic() + timeout
        while True:
            reported = {
                e["Actor"]["Attributes"].get("name")
                for e in self.read()
                if e.get("Action") == "health_status: healthy"
            }
            if names <= reported:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no health_status: healthy event within {timeout}s for {names - reported}"
                )
            time.sleep(0.1)

    def stop(self) -> list[dict[str, Any]]:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._out.close()
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


class Deployment:
    def __init__(self, project: ComposeProject, port: int, token: str, up_seconds: float) -> None:
        self.project = project
        self.port = port
        self.token = token
        self.up_seconds = up_seconds
        self.events: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def deployment(
    request: pytest.FixtureRequest,
    courier_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("compose-project")
    port = free_port()
    token = secrets.token_urlsafe(32)
    project = ComposeProject(
        directory,
        variables={
            "COURIER_IMAGE": courier_image,
            "REDIS_IMAGE": default_redis_image(),
            "API_PORT": str(port),
        },
        dotenv={"API_TOKENS": token},
    )
    event_log = EventLog(project.name, tmp_path_factory.mktemp("events") / "events.jsonl")
    try:
        started = time.monotonic()
        try:
            project.up(WORKERS)
        except BaseException:
            print(project.run("ps", "--all", check=False).stdout)
            print(project.logs()[-8000:])
            raise
        up_seconds = time.monotonic() - started
        # `up --wait` returned: every container is healthy; wait for the event stream to say so.
        event_log.wait_until_healthy({row["Name"] for row in project.ps()}, timeout=30)
        deployed = Deployment(project, port, token, up_seconds)
        deployed.events = event_log.stop()
        print(f"\n[e2e] compose project {project.name} up (healthy) in {up_seconds:.1f}s")
        yield deployed
    finally:
        event_log.stop()
        if failed(request.node):
            print(project.run("ps", "--all", check=False).stdout)
            print(project.logs()[-8000:])
        result = project.down()
        print(f"[e2e] compose down -v: exit {result.returncode}")
        leftovers = project.run("ps", "--all", "--quiet", check=False).stdout.split()
        volumes = run(
            [
                "docker",
                "volume",
                "ls",
                "--quiet",
                "--filter",
                f"label={PROJECT_LABEL}={project.name}",
            ],
            compose_environment({}),
            60,
        ).stdout.split()
        assert result.returncode == 0, result.stderr
        assert not leftovers, leftovers
        assert not volumes, volumes


def test_compose_services_are_all_healthy(deployment: Deployment) -> None:
    rows = deployment.project.ps()
    services = Counter(row["Service"] for row in rows)
    assert services == {"api": 1, "worker": WORKERS, "beat": 1, "redis": 1}, services
    for row in rows:
        assert row["State"] == "running", row
        assert row["Health"] == "healthy", row
    port_line = deployment.project.run("port", "api", "5001").stdout.strip()
    assert port_line == f"127.0.0.1:{deployment.port}", port_line
    print("[e2e] compose ps: " + ", ".join(sorted(f"{row['Name']}=healthy" for row in rows)))

    # Every worker replica came up and joined the others.
    ready = [line for line in deployment.project.json_logs("worker") if is_worker_ready(line)]
    assert len(ready) == WORKERS, ready


def test_compose_starts_couriers_only_after_redis_is_healthy(deployment: Deployment) -> None:
    def service(event: dict[str, Any]) -> str:
        return str(event["Actor"]["Attributes"].get("com.docker.compose.service"))

    def seconds(event: dict[str, Any]) -> float:
        return int(event["timeNano"]) / 1e9

    redis_healthy = [
        seconds(e)
        for e in deployment.events
        if service(e) == "redis" and e["Action"] == "health_status: healthy"
    ]
    assert redis_healthy, [(service(e), e["Action"]) for e in deployment.events]
    starts = {
        e["Actor"]["Attributes"]["name"]: seconds(e)
        for e in deployment.events
        if e["Action"] == "start" and service(e) in COURIER_SERVICES
    }
    assert len(starts) == len(COURIER_SERVICES) - 1 + WORKERS, starts
    leads = {name: at - min(redis_healthy) for name, at in starts.items()}
    assert all(lead >= 0 for lead in leads.values()), leads
    # ...and each of them then reported healthy itself.
    healthy = {
        e["Actor"]["Attributes"]["name"]
        for e in deployment.events
        if e["Action"] == "health_status: healthy" and service(e) in COURIER_SERVICES
    }
    assert healthy == set(starts), healthy
    print(
        "[e2e] started after redis healthy by: "
        + ", ".join(
            f"{name.rsplit('-', 2)[-2]}-{name.rsplit('-', 1)[-1]} +{lead:.2f}s"
            for name, lead in sorted(leads.items())
        )
    )


def test_compose_round_trip_with_the_token_from_dotenv(deployment: Deployment) -> None:
    base = f"http://127.0.0.1:{deployment.port}"
    assert requests.get(f"{base}/v1/tasks", timeout=10).status_code == 401
    client = ApiClient(base, deployment.token)
    assert client.http_get("/v1/tasks").status_code == 200
    client.wait_ready(60)
    started = time.monotonic()
    job_id = client.submit("demo.add", {"a": 7, "b": 35}, request_id="e2e-compose-round-trip")
    job = client.wait(job_id, timeout=60)
    assert job == {"id": job_id, "task": "demo.add", "state": "SUCCESS", "result": 42}
    elapsed = time.monotonic() - started
    added = wait_for_lines(
        lambda: deployment.project.json_logs("worker"),
        lambda lines: events(lines, "added", task_id=job_id),
        what=f"'added' line of job {job_id} in the workers' logs",
    )
    assert [line["request_id"] for line in added] == ["e2e-compose-round-trip"], added
    # With API_TOKENS set, nothing was generated: `courier token` points at the configured ones.
    token = deployment.project.exec("api", "courier", "token", check=False)
    assert token.returncode == 1, token
    assert "API_TOKENS is set" in token.stderr
    assert deployment.token not in token.stdout + token.stderr
    api_lines = deployment.project.logs("api")
    assert "API_TOKENS is unset" not in api_lines
    assert deployment.token not in api_lines
    print(f"[e2e] compose demo.add round trip {elapsed * 1000:.0f} ms")


def test_compose_redis_is_persistent_and_never_evicts(deployment: Deployment) -> None:
    policy = deployment.project.exec("redis", "redis-cli", "CONFIG", "GET", "maxmemory-policy")
    appendonly = deployment.project.exec("redis", "redis-cli", "CONFIG", "GET", "appendonly")
    assert policy.stdout.split() == ["maxmemory-policy", "noeviction"]
    assert appendonly.stdout.split() == ["appendonly", "yes"]
    print(f"[e2e] compose redis: {policy.stdout.split()} {appendonly.stdout.split()}")


def test_compose_courier_containers_are_hardened(deployment: Deployment) -> None:
    rows = [row for row in deployment.project.ps() if row["Service"] in COURIER_SERVICES]
    assert len(rows) == len(COURIER_SERVICES) - 1 + WORKERS
    names = [row["Name"] for row in rows]
    inspected = json.loads(run(["docker", "inspect", *names], compose_environment({}), 60).stdout)
    for attrs in inspected:
        host_config = attrs["HostConfig"]
        assert host_config["ReadonlyRootfs"] is True, attrs["Name"]
        assert host_config["CapDrop"] == ["ALL"], attrs["Name"]
        assert "no-new-privileges:true" in host_config["SecurityOpt"], attrs["Name"]
        assert attrs["Config"]["User"] == f"{NONROOT}:{NONROOT}", attrs["Name"]
        assert "/tmp" in host_config["Tmpfs"], attrs["Name"]
    uid = deployment.project.exec(
        "beat", "/opt/venv/bin/python", "-c", "import os; print(os.getuid(), os.getgid())"
    )
    assert uid.stdout.split() == [str(NONROOT), str(NONROOT)]
    assert all(name.startswith(deployment.project.name) for name in names), names
