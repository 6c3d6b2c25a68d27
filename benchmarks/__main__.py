"""`scripts/bench`: what courier costs at run time, each figure measured side by side with a bare
baseline on the same image, in the same run, with the same server settings.

    scripts/bench [--quick] [--image courier:latest] [--output bench.json]

Baselines: a hello-world WSGI app served by the same gunicorn worker class and count as the
API (`benchmarks/baselines/hello.py`), a default Celery app with the same task on the same queue
(`baselines/bare_celery.py`), a cold build, and the naive single-stage image. Load comes from
`hey` on 127.0.0.1, bounded in count and time. Timings on a shared machine are noisy: read the
ratios, and never assert on them (no test does).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.models.networks import Network

ROOT = Path(__file__).resolve().parent.parent
BASELINES = Path(__file__).resolve().parent / "baselines"
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a throwaway token of the run
LOOPBACK = "127.0.0.1"
PORT = 5001
VENV_PYTHON = "/opt/venv/bin/python"
LABEL = {"courier.bench": "1"}


@dataclass
class Row:
    measure: str
    courier: float | None
    baseline: float | None
    unit: str
    target: str = ""
    baseline_name: str = ""
    ratio: float | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.courier and self.baseline:
            self.ratio = self.courier / self.baseline


@dataclass
class Plan:
    """How much to measure: --quick keeps every measure, with little of each."""

    starts: int = 7
    requests: int = 4000
    concurrency: int = 4
    jobs: int = 2000
    round_trips: int = 200
    builds: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


QUICK = Plan(starts=2, requests=300, concurrency=4, jobs=200, round_trips=30, builds=False)


# -- containers ------------------------------------------------------------------------------------


class Lab:
    """Containers and a network of one benchmark run, all removed at the end."""

    def __init__(self, image: str) -> None:
        self.client = docker.from_env()
        self.image = image
        self.network: Network = self.client.networks.create(
            f"courier-bench-{uuid.uuid4().hex[:8]}", labels=LABEL
        )
        self.containers: list[Container] = []
        self.scratch = tempfile.mkdtemp(prefix="courier-bench-")
        os.chmod(self.scratch, 0o755)  # noqa: S103 - read by the containers' user

    def run(self, image: str | None = None, name: str = "", **kwargs: Any) -> Container:
        if kwargs.setdefault("network", self.network.name) is None:
            del kwargs["network"]
        kwargs.setdefault("labels", LABEL)
        container = self.client.containers.run(
            image or self.image,
            detach=True,
            name=f"courier-bench-{name}-{uuid.uuid4().hex[:6]}",
            **kwargs,
        )
        self.containers.append(container)
        return container

    def courier(
        self, name: str, env: dict[str, str], publish: bool = False, **kwargs: Any
    ) -> Container:
        """A courier container hardened as in production."""
        return self.run(
            name=name,
            environment={"LOG_FORMAT": "json", "API_TOKENS": TOKEN, **env},
            read_only=True,
            tmpfs={"/tmp": ""},  # noqa: S108 - the image's data directory
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            ports={f"{PORT}/tcp": (LOOPBACK, None)} if publish else {},
            **kwargs,
        )

    def redis(self, redis_image: str) -> Container:
        """Redis reachable as `redis:6379` on the network, and from the host on 127.0.0.1."""
        container = self.run(
            redis_image,
            name="redis",
            network=None,
            command=["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"],
            ports={"6379/tcp": (LOOPBACK, None)},
        )
        self.network.connect(container, aliases=["redis"])
        wait_until(lambda: b"Ready to accept" in container.logs(), 30, "redis ready")
        return container

    def remove(self, container: Container) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)

    def close(self) -> None:
        for container in reversed(self.containers):
            self.remove(container)
        with contextlib.suppress(docker.errors.APIError):
            self.network.remove()
        shutil.rmtree(self.scratch, ignore_errors=True)


def host_port(container: Container, port: int = PORT) -> int:
    container.reload()
    return int(container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.01
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(requests.RequestException, OSError):
            if check():
                return time.monotonic() - started
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s")


def answers(url: str) -> bool:
    return requests.get(url, timeout=1).status_code == 200


RSS_SCRIPT = r"""
import os
total = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    except OSError:
        pass
print(total)
"""


def rss_mb(container: Container) -> float:
    """Resident memory of every process of the container (this probe's own excluded), in MB."""
    code, output = container.exec_run([VENV_PYTHON, "-c", RSS_SCRIPT])
    if code != 0:
        raise RuntimeError(output.decode(errors="replace"))
    return int(output.decode().strip()) / 1024


# -- load --------------------------------------------------------------------------------------


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    errors: int


def hey(
    url: str, plan: Plan, method: str = "GET", body: str | None = None, token: bool = False
) -> Load:
    """`hey` against `url`: `plan.requests` requests, `plan.concurrency` at a time, 120 s at
    most."""
    argv = ["hey", "-n", str(plan.requests), "-c", str(plan.concurrency), "-m", method, "-t", "10"]
    if body is not None:
        argv += ["-T", "application/json", "-d", body]
    if token:
        argv += ["-H", f"Authorization: Bearer {TOKEN}"]
    output = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    p50 = re.search(r"50%+ in ([\d.]+) secs", output)
    statuses = {int(s): int(n) for s, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", output)}
    good = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return Load(rate, float(p50[1]) * 1000 if p50 else float("nan"), plan.requests - good)


# -- measures ----------------------------------------------------------------------------------


def api_env() -> dict[str, str]:
    return {
        "MODE": "api",
        "BROKER_URL": "redis://redis:6379/0",
        "RESULT_BACKEND": "redis://redis:6379/1",
    }


def hello(lab: Lab) -> Container:
    """The baseline server: gunicorn with the API's very options (worker class and count,
    threads, timeouts, ...: `gunicorn.conf.py`, written by `server_settings`), serving hello."""
    return lab.run(
        name="hello",
        entrypoint=[VENV_PYTHON, "-m", "gunicorn"],
        command=["--config", "/bench-config/gunicorn.conf.py", "hello:app"],
        environment={"PYTHONPATH": "/bench"},
        volumes={
            str(BASELINES): {"bind": "/bench", "mode": "ro"},
            lab.scratch: {"bind": "/bench-config", "mode": "ro"},
        },
        read_only=True,
        ports={f"{PORT}/tcp": (LOOPBACK, None)},
    )


def start_seconds(lab: Lab, start: Callable[[], Container]) -> float:
    """From `docker run` until /healthz answers 200."""
    began = time.monotonic()
    container = start()
    port = host_port(container)
    wait_until(lambda: answers(f"http://{LOOPBACK}:{port}/healthz"), 60, "healthz")
    seconds = time.monotonic() - began
    lab.remove(container)
    return seconds


def measure_api(lab: Lab, plan: Plan, rows: list[Row], memory: dict[str, float]) -> None:
    server_settings(lab)
    starts_courier, starts_hello = [], []
    for _ in range(plan.starts):  # interleaved: both see the same machine
        starts_courier.append(
            start_seconds(lab, lambda: lab.courier("api", api_env(), publish=True))
        )
        starts_hello.append(start_seconds(lab, lambda: hello(lab)))
    rows.append(
        Row(
            "container start → /healthz 200",
            statistics.median(starts_courier),
            statistics.median(starts_hello),
            "s",
            "≤ 1.3x",
            "gunicorn, WSGI hello",
        )
    )

    api = lab.courier("api", api_env(), publish=True)
    base = f"http://{LOOPBACK}:{host_port(api)}"
    wait_until(lambda: answers(f"{base}/readyz"), 60, "api ready")
    memory["api idle"] = rss_mb(api)
    bare = hello(lab)
    bare_url = f"http://{LOOPBACK}:{host_port(bare)}/healthz"
    wait_until(lambda: answers(bare_url), 60, "hello ready")
    memory["hello idle"] = rss_mb(bare)

    ours, theirs = hey(f"{base}/healthz", plan), hey(bare_url, plan)
    rows.append(
        Row(
            "GET /healthz req/s",
            ours.requests_per_second,
            theirs.requests_per_second,
            "req/s",
            "≥ 0.90",
            "same hello",
            notes=f"errors {ours.errors}/{theirs.errors}",
        )
    )
    body = json.dumps({"task": "demo.add", "args": {"a": 1, "b": 2}})
    submitted = hey(f"{base}/v1/jobs", plan, "POST", body, token=True)
    memory["api loaded"] = rss_mb(api)
    theirs = hey(bare_url, plan, "POST", body)
    rows.append(
        Row(
            "POST /v1/jobs req/s",
            submitted.requests_per_second,
            theirs.requests_per_second,
            "req/s",
            "≥ 0.50",
            "same hello",
            notes=f"errors {submitted.errors}",
        )
    )
    lab.remove(bare)
    # What metrics cost per request: the same API without them.
    bare_api = lab.courier("api", {**api_env(), "METRICS_PORT": "0"}, publish=True)
    bare_base = f"http://{LOOPBACK}:{host_port(bare_api)}"
    wait_until(lambda: answers(f"{bare_base}/readyz"), 60, "api without metrics ready")
    without = hey(f"{bare_base}/healthz", plan)
    rows.append(
        Row(
            "GET /healthz req/s, metrics on vs off",
            ours.requests_per_second,
            without.requests_per_second,
            "req/s",
            "~ 1.0",
            "METRICS_PORT=0",
        )
    )
    lab.remove(bare_api)
    plan.extra["api"] = api
    plan.extra["base"] = base


# The API's gunicorn options, as the image's own code sets them, minus its logging (the hello
# app logs nothing) and its process name.
SERVER_OPTIONS = """
import json
from courier.api.server import gunicorn_options
from courier.settings import load_settings
settings = load_settings({"MODE": "api", "BROKER_URL": "redis://redis:6379/0"})
options = gunicorn_options(settings)
for name in ("logconfig_dict", "errorlog", "accesslog", "loglevel", "proc_name", "logger_class"):
    options.pop(name, None)
plain = {name: value for name, value in options.items() if not callable(value)}
limits = {
    "header_timeout": settings.request_header_timeout,
    "body_timeout": settings.request_body_timeout,
    "max_body": settings.max_body_bytes,
}
print(json.dumps({"options": plain, "limits": limits}))
"""
# The baseline's worker class: the API's own, built the way courier.api.server builds it.
WORKER_CLASS = """from courier.api.buffering import ReadLimits, buffering_worker
worker_class = buffering_worker(ReadLimits(**{limits!r}))
"""


def server_settings(lab: Lab) -> dict[str, Any]:
    """Write the baseline's gunicorn.conf.py with the API's options and worker class."""
    output = lab.client.containers.run(
        lab.image, entrypoint=[VENV_PYTHON, "-c", SERVER_OPTIONS], remove=True
    )
    found: dict[str, Any] = json.loads(bytes(output))
    options: dict[str, Any] = found["options"]
    config = "".join(f"{name} = {value!r}\n" for name, value in options.items())
    config += WORKER_CLASS.format(limits=found["limits"])
    (Path(lab.scratch) / "gunicorn.conf.py").write_text(config)
    return options


def queue_jobs(redis_port: int, count: int) -> None:
    """Put `count` demo.add messages on the `celery` queue, as the API would (kwargs)."""
    from celery import Celery

    app = Celery("bench", broker=f"redis://{LOOPBACK}:{redis_port}/0", set_as_current=False)
    with app.producer_or_acquire() as producer:
        for number in range(count):
            app.send_task("demo.add", kwargs={"a": number, "b": 1}, producer=producer)
    app.close()


def drain_seconds(
    lab: Lab, redis: Container, start: Callable[[], Container], count: int
) -> tuple[float, float]:
    """Queue `count` jobs, start a worker, and time from its first taken job to the last stored
    result; (jobs per second, its memory while draining in MB)."""
    import redis as redis_client

    port = host_port(redis, 6379)
    broker = redis_client.Redis(host=LOOPBACK, port=port, db=0)
    results = redis_client.Redis(host=LOOPBACK, port=port, db=1)
    broker.flushall()
    queue_jobs(port, count)
    worker = start()
    wait_until(
        lambda: broker.llen("celery") < count, 120, "the worker taking a job", interval=0.002
    )
    began = time.monotonic()
    loaded = 0.0
    while results.dbsize() < count:
        if not loaded and results.dbsize() > count // 2:
            loaded = rss_mb(worker)
        if time.monotonic() - began > 600:
            raise TimeoutError("drain not finished in 600 s")
        time.sleep(0.01)
    seconds = time.monotonic() - began
    lab.remove(worker)
    return count / seconds, loaded


def measure_worker(
    lab: Lab, plan: Plan, rows: list[Row], memory: dict[str, float], redis: Container
) -> None:
    env = {
        "MODE": "worker",
        "BROKER_URL": "redis://redis:6379/0",
        "RESULT_BACKEND": "redis://redis:6379/1",
        "WORKER_CONCURRENCY": "2",
    }
    ours, memory["worker loaded"] = drain_seconds(
        lab, redis, lambda: lab.courier("worker", env), plan.jobs
    )
    bare_env = {
        "BROKER_URL": "redis://redis:6379/0",
        "RESULT_BACKEND": "redis://redis:6379/1",
        "PYTHONPATH": "/bench",
    }
    theirs, memory["bare worker loaded"] = drain_seconds(
        lab,
        redis,
        lambda: lab.run(
            name="bare-worker",
            entrypoint=[
                VENV_PYTHON,
                "-m",
                "celery",
                "--app",
                "bare_celery",
                "worker",
                "--concurrency",
                "2",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "WARNING",
            ],
            environment=bare_env,
            volumes={str(BASELINES): {"bind": "/bench", "mode": "ro"}},
        ),
        plan.jobs,
    )
    rows.append(
        Row(
            f"worker drain, {plan.jobs} demo.add, 2 processes",
            ours,
            theirs,
            "jobs/s",
            "≥ 1.0",
            "default Celery app, same queue",
        )
    )
    # What metrics and task events cost per task: the same drain without, and with, them.
    without, _ = drain_seconds(
        lab, redis, lambda: lab.courier("worker", {**env, "METRICS_PORT": "0"}), plan.jobs
    )
    rows.append(
        Row("worker drain, metrics on vs off", ours, without, "jobs/s", "~ 1.0", "METRICS_PORT=0")
    )
    events, _ = drain_seconds(
        lab, redis, lambda: lab.courier("worker", {**env, "TASK_EVENTS": "true"}), plan.jobs
    )
    rows.append(
        Row("worker drain, task events on vs off", events, ours, "jobs/s", "", "TASK_EVENTS=false")
    )
    idle = lab.courier("worker", env)
    time.sleep(3)
    memory["worker idle"] = rss_mb(idle)
    plan.extra["worker"] = idle


def measure_round_trips(plan: Plan, rows: list[Row]) -> None:
    base: str = plan.extra["base"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"

    def one(prefer: bool) -> float:
        began = time.perf_counter()
        headers = {"Prefer": "wait=5"} if prefer else {}
        response = session.post(
            f"{base}/v1/jobs",
            json={"task": "demo.add", "args": {"a": 1, "b": 2}},
            headers=headers,
            timeout=10,
        )
        body = response.json()
        while body.get("state") != "SUCCESS":
            if time.perf_counter() - began > 10:
                raise TimeoutError("round trip over 10 s")
            body = session.get(f"{base}/v1/jobs/{body['id']}", headers=headers, timeout=10).json()
        return (time.perf_counter() - began) * 1000

    for prefer in (False, True):
        timings = sorted(one(prefer) for _ in range(plan.round_trips))
        p50, p90 = timings[len(timings) // 2], timings[int(len(timings) * 0.9)]
        how = "Prefer: wait=5" if prefer else "POST, then GET until done"
        rows.append(
            Row(
                f"job round trip p50 ({how})",
                p50,
                None,
                "ms",
                "≤ 5 ms" if prefer else "",
                notes=f"p90 {p90:.1f} ms",
            )
        )


def measure_all_mode(lab: Lab, memory: dict[str, float]) -> None:
    combined = lab.courier("all", {}, publish=True)
    port = host_port(combined)
    wait_until(lambda: answers(f"http://{LOOPBACK}:{port}/readyz"), 90, "MODE=all ready")
    time.sleep(3)
    memory["MODE=all idle"] = rss_mb(combined)
    lab.remove(combined)


def bake(directory: Path, env: dict[str, str], *extra: str) -> float:
    began = time.monotonic()
    subprocess.run(
        ["docker", "buildx", "bake", "-f", "docker-bake.hcl", *extra],
        cwd=directory,
        env=env,
        check=True,
        capture_output=True,
        timeout=1800,
    )
    return time.monotonic() - began


def measure_builds(plan: Plan, rows: list[Row], lab: Lab) -> None:
    env = {**os.environ, "IMAGE": "courier-bench", "GIT_SHA": "b" * 40, "VERSION": "0.0.0-bench"}
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "courier"
        shutil.copytree(
            ROOT, copy, ignore=shutil.ignore_patterns(".git", "__pycache__", ".venv", "*.egg-info")
        )
        cold = bake(copy, env, "--no-cache")
        module = copy / "src" / "courier" / "__init__.py"
        module.write_text(module.read_text() + f"# bench {uuid.uuid4().hex}\n")
        warm = bake(copy, env)
    rows.append(Row("rebuild after a change under src/", warm, cold, "s", "≤ 0.10", "cold build"))
    for image in lab.client.images.list(name="courier-bench"):
        with contextlib.suppress(docker.errors.APIError):
            lab.client.images.remove(image.id, force=True)


def measure_size(lab: Lab, rows: list[Row]) -> None:
    tag = f"courier-single-stage:bench-{uuid.uuid4().hex[:6]}"
    argv = [
        "docker",
        "buildx",
        "build",
        "--load",
        "-f",
        "tests/images/single-stage.Dockerfile",
        "-t",
        tag,
        ".",
    ]
    if os.environ.get("BUILD_IMAGE"):
        argv[3:3] = ["--build-arg", f"BUILD_IMAGE={os.environ['BUILD_IMAGE']}"]
    if os.environ.get("CA_BUNDLE"):
        argv[3:3] = ["--secret", f"id=ca_bundle,src={os.environ['CA_BUNDLE']}"]
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=1800)
    ours = lab.client.images.get(lab.image).attrs["Size"] / 1e6
    theirs = lab.client.images.get(tag).attrs["Size"] / 1e6
    lab.client.images.remove(tag, force=True)
    rows.append(Row("image size", ours, theirs, "MB", "≤ 0.5", "single-stage Poetry image"))


# -- report ------------------------------------------------------------------------------------


def table(rows: list[Row], memory: dict[str, float]) -> str:
    lines = ["| measure | courier | bare baseline | ratio | target |", "|---|---|---|---|---|"]
    for row in rows:
        ours = f"{row.courier:.4g} {row.unit}" if row.courier is not None else "-"
        theirs = f"{row.baseline:.4g} ({row.baseline_name})" if row.baseline is not None else "-"
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        notes = f" ({row.notes})" if row.notes else ""
        lines.append(
            f"| {row.measure}{notes} | {ours} | {theirs} | {ratio} | {row.target or '-'} |"
        )
    lines.append("")
    lines.append("| memory (RSS, all processes of the container) | MB |")
    lines.append("|---|---|")
    lines += [f"| {name} | {value:.1f} |" for name, value in memory.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a little of every measure (CI)")
    parser.add_argument("--image", default="courier:latest", help="the image to measure")
    parser.add_argument("--output", default="bench.json", help="where to write the JSON results")
    args = parser.parse_args(argv)
    plan = Plan(**asdict(QUICK)) if args.quick else Plan()
    rows: list[Row] = []
    memory: dict[str, float] = {}
    lab = Lab(args.image)
    began = time.monotonic()
    try:
        redis = lab.redis(os.environ.get("REDIS_IMAGE", "redis:8"))
        measure_api(lab, plan, rows, memory)
        measure_worker(lab, plan, rows, memory, redis)
        measure_round_trips(plan, rows)
        measure_all_mode(lab, memory)
        if plan.builds:
            measure_builds(plan, rows, lab)
            measure_size(lab, rows)
    finally:
        lab.close()
    report = table(rows, memory)
    print(report)
    kind = "quick" if args.quick else "full"
    machine = f"{os.cpu_count()} cores, {kind} run, {time.monotonic() - began:.0f} s"
    print(f"\n{time.strftime('%Y-%m-%d')}, {machine}, image {args.image}")
    Path(args.output).write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": machine,
                "image": args.image,
                "rows": [asdict(r) for r in rows],
                "memory_mb": memory,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
