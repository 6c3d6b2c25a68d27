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
    rounds: int = 3
    builds: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


QUICK = Plan(
    starts=2, requests=300, concurrency=4, jobs=200, round_trips=30, rounds=1, builds=False
)


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
rss = pss = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    except OSError:
        pass
print(rss, pss)
"""


def rss_mb(container: Container) -> str:
    """Memory of every process of the container (this probe's own excluded), in MB: resident
    (pages shared by forked processes counted in each) and proportional (shared pages split
    between them: what the container really holds)."""
    code, output = container.exec_run([VENV_PYTHON, "-c", RSS_SCRIPT])
    if code != 0:
        raise RuntimeError(output.decode(errors="replace"))
    rss, pss = (int(value) / 1024 for value in output.decode().split())
    return f"{rss:.1f} | {pss:.1f}"


# -- load --------------------------------------------------------------------------------------


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    errors: int
    cpu_us: float = float("nan")  # CPU time of the server's container per request


def cpu_ns(container: Container) -> int:
    """CPU time every process of the container used so far (the engine's count), in ns."""
    stats: dict[str, Any] = container.stats(stream=False, one_shot=True)
    return int(stats["cpu_stats"]["cpu_usage"]["total_usage"])


def hey(
    url: str,
    plan: Plan,
    method: str = "GET",
    body: str | None = None,
    token: bool = False,
    server: Container | None = None,
) -> Load:
    """`hey` against `url`: `plan.requests` requests, `plan.concurrency` at a time, 120 s at
    most; with `server`, the CPU time its container used per request."""
    before = cpu_ns(server) if server is not None else 0
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
    cpu = (cpu_ns(server) - before) / 1000 / plan.requests if server is not None else float("nan")
    return Load(rate, float(p50[1]) * 1000 if p50 else float("nan"), plan.requests - good, cpu)


# -- measures ----------------------------------------------------------------------------------


# The benchmark's Redis, as every container (courier's and the baselines') reaches it.
REDIS_ENV: dict[str, str] = {
    "BROKER_URL": "redis://redis:6379/0",
    "RESULT_BACKEND": "redis://redis:6379/1",
}


def api_env() -> dict[str, str]:
    return {"MODE": "api", **REDIS_ENV}


def hello(lab: Lab, app: str = "hello:app") -> Container:
    """The baseline server: gunicorn with the API's very options (worker class and count,
    threads, timeouts, ...: `gunicorn.conf.py`, written by `server_settings`), serving hello
    (or another baseline app)."""
    return lab.run(
        name=app.partition(":")[0],
        entrypoint=[VENV_PYTHON, "-m", "gunicorn"],
        command=["--config", "/bench-config/gunicorn.conf.py", app],
        environment={"PYTHONPATH": "/bench", **REDIS_ENV},
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


def side_by_side(plan: Plan, *loads: Callable[[], Load]) -> list[Load]:
    """Each load `plan.rounds` times, interleaved (all see the same machine); their medians."""
    runs: list[list[Load]] = [[] for _ in loads]
    for _ in range(plan.rounds):
        for results, load in zip(runs, loads, strict=True):
            results.append(load())
    return [
        Load(
            statistics.median(r.requests_per_second for r in results),
            statistics.median(r.p50_ms for r in results),
            sum(r.errors for r in results),
            statistics.median(r.cpu_us for r in results),
        )
        for results in runs
    ]


def http_row(measure: str, ours: Load, theirs: Load, target: str, baseline: str) -> Row:
    """req/s side by side; the notes give each side's CPU time per request (the ratio of those
    is steadier than that of req/s on a shared machine) and errors."""
    return Row(
        measure,
        ours.requests_per_second,
        theirs.requests_per_second,
        "req/s",
        target,
        baseline,
        notes=f"CPU/request {ours.cpu_us:.0f} vs {theirs.cpu_us:.0f} µs, "
        f"errors {ours.errors}/{theirs.errors}",
    )


def measure_api(lab: Lab, plan: Plan, rows: list[Row], memory: dict[str, str]) -> None:
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
    time.sleep(1)  # every web worker booted (the first answers before the others exist)
    memory["api idle"] = rss_mb(api)
    bare = hello(lab)
    bare_url = f"http://{LOOPBACK}:{host_port(bare)}/healthz"
    wait_until(lambda: answers(bare_url), 60, "hello ready")
    time.sleep(1)
    memory["hello idle"] = rss_mb(bare)
    submitter = hello(lab, "submit:app")
    submit_base = f"http://{LOOPBACK}:{host_port(submitter)}"
    submit_url = f"{submit_base}/v1/jobs"
    wait_until(lambda: answers(f"{submit_base}/healthz"), 60, "submit")
    without_metrics = lab.courier("api", {**api_env(), "METRICS_PORT": "0"}, publish=True)
    without_base = f"http://{LOOPBACK}:{host_port(without_metrics)}"
    wait_until(lambda: answers(f"{without_base}/readyz"), 60, "api without metrics ready")

    ours, theirs, without = side_by_side(
        plan,
        lambda: hey(f"{base}/healthz", plan, server=api),
        lambda: hey(bare_url, plan, server=bare),
        lambda: hey(f"{without_base}/healthz", plan, server=without_metrics),
    )
    rows.append(http_row("GET /healthz req/s", ours, theirs, "≥ 0.90", "same hello"))
    body = json.dumps({"task": "demo.add", "args": {"a": 1, "b": 2}})
    submitted, hello_post, bare_submit = side_by_side(
        plan,
        lambda: hey(f"{base}/v1/jobs", plan, "POST", body, token=True, server=api),
        lambda: hey(bare_url, plan, "POST", body, server=bare),
        lambda: hey(submit_url, plan, "POST", body, server=submitter),
    )
    memory["api loaded"] = rss_mb(api)
    rows.append(http_row("POST /v1/jobs req/s", submitted, hello_post, "≥ 0.50", "same hello"))
    rows.append(
        http_row(
            "POST /v1/jobs req/s, vs Celery's own send_task",
            submitted,
            bare_submit,
            "",
            "WSGI app calling send_task",
        )
    )
    rows.append(
        http_row("GET /healthz req/s, metrics on vs off", ours, without, "~ 1.0", "METRICS_PORT=0")
    )
    for container in (bare, submitter, without_metrics):
        lab.remove(container)
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
    lab: Lab, redis: Container, start: Callable[[], Container], count: int, probe: bool = False
) -> tuple[float, str | None]:
    """Queue `count` jobs, start a worker, and time from its first taken job to the last stored
    result; (jobs per second, with `probe` its memory once it drained them, read after the
    timing)."""
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
    while results.dbsize() < count:
        if time.monotonic() - began > 600:
            raise TimeoutError("drain not finished in 600 s")
        time.sleep(0.01)
    seconds = time.monotonic() - began
    loaded = rss_mb(worker) if probe else None
    lab.remove(worker)
    return count / seconds, loaded


def measure_worker(
    lab: Lab, plan: Plan, rows: list[Row], memory: dict[str, str], redis: Container
) -> None:
    env = {"MODE": "worker", **REDIS_ENV, "WORKER_CONCURRENCY": "2"}

    def bare(delivery: str) -> Callable[[], Container]:
        return lambda: lab.run(
            name="bare-worker",
            entrypoint=[VENV_PYTHON, "-m", "celery", "--app", "bare_celery", "worker"],
            command=["--concurrency", "2", "--without-mingle", "--without-gossip"],
            environment={**REDIS_ENV, "PYTHONPATH": "/bench", "BARE_DELIVERY": delivery},
            volumes={str(BASELINES): {"bind": "/bench", "mode": "ro"}},
        )

    def courier(**extra: str) -> Callable[[], Container]:
        return lambda: lab.courier("worker", {**env, **extra})

    starters = {
        "courier": courier(),
        "bare": bare("default"),
        "bare, courier's delivery": bare("courier"),
        "metrics off": courier(METRICS_PORT="0"),
        "events on": courier(TASK_EVENTS="true"),
        "warning": courier(LOG_LEVEL="WARNING"),
    }
    # Memory once drained, of these, read in the last round.
    probed = {"courier": "worker loaded", "bare": "bare worker loaded"}
    rates: dict[str, list[float]] = {name: [] for name in starters}
    for round_ in range(plan.rounds):  # interleaved: all see the same machine
        last = round_ == plan.rounds - 1
        for name, start in starters.items():
            label = probed.get(name) if last else None
            jobs_per_second, loaded = drain_seconds(lab, redis, start, plan.jobs, label is not None)
            rates[name].append(jobs_per_second)
            if label is not None and loaded is not None:
                memory[label] = loaded
    rate = {name: statistics.median(values) for name, values in rates.items()}
    drain = f"worker drain, {plan.jobs} demo.add, 2 processes"
    rows += [
        Row(drain, rate["courier"], rate["bare"], "jobs/s", "≥ 1.0", "default Celery app"),
        Row(
            f"{drain}, same delivery settings",
            rate["courier"],
            rate["bare, courier's delivery"],
            "jobs/s",
            "",
            "Celery app with acks late, prefetch 1, STARTED",
        ),
        Row(
            "worker drain, metrics on vs off",
            rate["courier"],
            rate["metrics off"],
            "jobs/s",
            "~ 1.0",
            "METRICS_PORT=0",
        ),
        Row(
            "worker drain, task events on vs off",
            rate["events on"],
            rate["courier"],
            "jobs/s",
            "",
            "TASK_EVENTS=false",
        ),
        Row(
            "worker drain, LOG_LEVEL=INFO vs WARNING",
            rate["courier"],
            rate["warning"],
            "jobs/s",
            "",
            "WARNING (Celery's default level)",
        ),
    ]
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


def measure_all_mode(lab: Lab, memory: dict[str, str]) -> None:
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


def table(rows: list[Row], memory: dict[str, str]) -> str:
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
    lines.append("| memory, all processes of the container | RSS, MB | PSS, MB |")
    lines.append("|---|---|---|")
    lines += [f"| {name} | {value} |" for name, value in memory.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a little of every measure (CI)")
    parser.add_argument("--image", default="courier:latest", help="the image to measure")
    parser.add_argument("--output", default="bench.json", help="where to write the JSON results")
    args = parser.parse_args(argv)
    plan = Plan(**asdict(QUICK)) if args.quick else Plan()
    rows: list[Row] = []
    memory: dict[str, str] = {}
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
