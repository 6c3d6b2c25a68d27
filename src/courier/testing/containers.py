"""Containers for tests of a courier image, in the style of testcontainers' own modules
(`RedisContainer`, `PostgresContainer`): `CourierContainer` runs one role of the image hardened
as in production, and `start()` returns once that role is ready, or fails at once with the
container's exit code and last log lines when it exits first (a bad `MODE` is 64, a bad setting
78), never after a long timeout. Ports are published on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Self

import docker.errors
from testcontainers.core.container import DockerContainer
from testcontainers.core.exceptions import ContainerStartException
from testcontainers.core.network import Network
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from courier import exitcodes
from courier.buildinfo import UNKNOWN, BuildInfo
from courier.testing.client import CourierClient
from courier.testing.logs import last_lines, parse_json_lines

LOOPBACK = "127.0.0.1"
API_PORT = 5001
NONROOT = "65532:65532"
# On every container this module creates, so that whoever lists the engine's containers sees whose.
LABEL = "courier.testing"
# `--read-only --cap-drop ALL --security-opt no-new-privileges --user 65532:65532`, as compose
# runs every courier service (the tmpfs on /tmp, where DATA_DIR lives, is added separately).
HARDENING: dict[str, Any] = {
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "user": NONROOT,
}
STARTUP_TIMEOUT = 120.0
POLL_INTERVAL = 0.5
# Modes whose container serves the API (None: the image's default, `all`).
API_MODES = frozenset({None, "api", "all"})
# Celery's line once a worker consumes from the broker: `celery@<host> ready.` (logged at INFO).
CONSUMING = re.compile(r"celery@\S+ ready\.")
QUIET_LOG_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})
ENVIRONMENT_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
EXIT_MEANINGS = {
    exitcodes.USAGE: "usage: unknown MODE or subcommand",
    exitcodes.SOFTWARE: "a role exited on its own",
    exitcodes.OSERR: "the server could not be started",
    exitcodes.CONFIG: "configuration: a setting is invalid",
    137: "killed",
}


class CourierStartError(ContainerStartException):
    """A container never became ready: it exited (`exit_code` is set) or its wait timed out.

    The message names the container and why, with its last log lines (courier never logs a
    secret, so they are safe to show).
    """

    def __init__(
        self, container: str, reason: str, *, exit_code: int | None = None, logs: str = ""
    ) -> None:
        self.container = container
        self.reason = reason
        self.exit_code = exit_code
        self.logs = logs
        message = f"container {container} {reason}"
        if exit_code is not None:
            meaning = EXIT_MEANINGS.get(exit_code)
            message += f" with exit code {exit_code}" + (f" ({meaning})" if meaning else "")
        super().__init__(f"{message}\nlast log lines:\n{logs or '(none)'}")


# -- helpers for any testcontainers container --------------------------------------------------


def unwrap(container: DockerContainer | Any) -> Any:
    """The docker SDK's container behind a testcontainers one (or the SDK's container itself)."""
    return (
        container.get_wrapped_container() if isinstance(container, DockerContainer) else container
    )


def container_logs(container: DockerContainer | Any) -> str:
    """stdout and stderr of a container (running or exited), in order, decoded."""
    raw: bytes = unwrap(container).logs(stdout=True, stderr=True)
    return raw.decode(errors="replace")


def json_logs(container: DockerContainer | Any) -> list[dict[str, Any]]:
    """The JSON log lines of a container (running or exited), in order."""
    return parse_json_lines(container_logs(container))


def publish_on_loopback(container: DockerContainer, *ports: int) -> DockerContainer:
    """Publish container ports on 127.0.0.1 (random host ports), never on every interface."""
    for port in ports:
        container.ports[f"{port}/tcp"] = (LOOPBACK, None)  # type: ignore[assignment]
    return container


def host_port(container: DockerContainer | Any, port: int) -> int:
    """The 127.0.0.1 host port that container `port` is published on (read from the engine,
    without testcontainers' wait for a running container: an exited one answers too)."""
    wrapped = unwrap(container)
    wrapped.reload()
    bindings = wrapped.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp") or []
    for binding in bindings:
        if binding.get("HostIp") == LOOPBACK:
            return int(binding["HostPort"])
    raise ContainerStartException(
        f"port {port} of {wrapped.name} is not published on {LOOPBACK} ({bindings})"
    )


def exit_code(container: DockerContainer | Any, timeout: float = 60.0) -> int:
    """Wait (at most `timeout` seconds) for the container to exit; its exit code."""
    return int(unwrap(container).wait(timeout=timeout)["StatusCode"])


def add_labels(container: DockerContainer, labels: Mapping[str, str]) -> DockerContainer:
    """Put `labels` on a container that is not started yet, beside any it has."""
    # testcontainers keeps create() arguments in `_kwargs`; `with_kwargs` would replace them.
    kwargs = container._kwargs
    kwargs["labels"] = {**kwargs.get("labels", {}), **labels}
    return container


def remove_container(container: DockerContainer) -> None:
    """Remove a container and its anonymous volumes, if it was ever created; never raises for
    one that is already gone."""
    try:
        wrapped = container.get_wrapped_container()
    except ContainerStartException:
        return
    try:
        wrapped.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    finally:
        container.get_docker_client().client.close()


# -- waiting -----------------------------------------------------------------------------------


class FailFastWait(WaitStrategy):
    """Poll `problem()` until it finds none. Fails at once when the container exits (with the
    exit code and last log lines), and with the last problem seen after `startup_timeout`."""

    def __init__(self) -> None:
        super().__init__()
        self._startup_timeout = STARTUP_TIMEOUT
        self._poll_interval = POLL_INTERVAL

    def problem(self, container: WaitStrategyTarget) -> str | None:
        """Why the container is not ready yet; None once it is."""
        raise NotImplementedError

    def check(self, container: WaitStrategyTarget) -> str | None:
        """`problem()`, for a container seen running just before. When the check fails, the
        container may have exited meanwhile (it then has no port map and refuses exec): that
        exit is the error, with its code and log. Other errors name the container too."""
        try:
            return self.problem(container)
        except Exception as error:
            wrapped = container.get_wrapped_container()
            exited = exit_error(wrapped)
            if exited is not None:
                raise exited from error
            if isinstance(error, OSError | docker.errors.APIError):
                return f"{type(error).__name__}: {error}"
            raise CourierStartError(
                wrapped.name,
                f"could not be checked: {type(error).__name__}: {error}",
                logs=last_lines(container_logs(wrapped)),
            ) from error

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        wait_all_ready([(self, container)], self._startup_timeout, interval=self._poll_interval)


def exit_error(
    container: DockerContainer | Any, reason: str = "exited while starting"
) -> CourierStartError | None:
    """The error of a container that exited (its exit code and last log lines), or that was
    removed meanwhile; None while it runs."""
    wrapped = unwrap(container)
    try:
        wrapped.reload()
    except docker.errors.NotFound:
        return CourierStartError(wrapped.name, "was removed while starting")
    if wrapped.status not in ("exited", "dead"):
        return None
    return CourierStartError(
        wrapped.name,
        reason,
        exit_code=int(wrapped.attrs["State"]["ExitCode"]),
        logs=last_lines(container_logs(wrapped)),
    )


def raise_first_exit(
    containers: Sequence[DockerContainer | Any], reason: str = "exited while starting"
) -> None:
    """`exit_error` of the first of `containers` that exited, if any."""
    for container in containers:
        exited = exit_error(container, reason)
        if exited is not None:
            raise exited


WATCHED_EXIT = "exited while the others were starting"


def wait_all_ready(
    waits: Sequence[tuple[FailFastWait, WaitStrategyTarget]],
    timeout: float,
    *,
    watch: Sequence[DockerContainer] = (),
    interval: float = POLL_INTERVAL,
) -> None:
    """Wait for several containers together, each by its own strategy, so that one exiting is
    reported at once whichever the others are doing. Each poll first looks for an exit among
    them all (and among `watch`, containers already ready, e.g. the brokers): the first found
    fails the wait with its exit code and log; then it checks the ones not ready yet. After
    `timeout` seconds, fails with the first container still not ready and its last problem."""
    pending = list(waits)
    deadline = time.monotonic() + timeout
    while True:
        raise_first_exit(watch, WATCHED_EXIT)
        raise_first_exit([target.get_wrapped_container() for _, target in pending])
        problems = [(wait, target, wait.check(target)) for wait, target in pending]
        pending = [(wait, target) for wait, target, problem in problems if problem is not None]
        if not pending:
            return
        if time.monotonic() >= deadline:
            # An exit since the last look is the better reason.
            raise_first_exit(watch, WATCHED_EXIT)
            raise_first_exit([target.get_wrapped_container() for _, target in pending])
            unready = [(t.get_wrapped_container(), p) for _, t, p in problems if p is not None]
            (first, problem), others = unready[0], unready[1:]
            reason = f"not ready within {timeout:g}s: {problem}"
            if others:
                reason += "; also not ready: " + "; ".join(f"{w.name}: {p}" for w, p in others)
            raise CourierStartError(first.name, reason, logs=last_lines(container_logs(first)))
        time.sleep(interval)


class LogMessageReady(FailFastWait):
    """Ready once `message` is in the container's log (a broker's own start-up line)."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def problem(self, container: WaitStrategyTarget) -> str | None:
        if self.message in container_logs(container.get_wrapped_container()):
            return None
        return f"no {self.message!r} in its log yet"


class CourierReady(FailFastWait):
    """A courier role's readiness: `/readyz` answers 200 (broker and result backend answer)
    for a role serving the API; the image's own healthcheck command passes for the others (and
    for `MODE=all`); a worker has also logged that it consumes, unless its LOG_LEVEL hides it."""

    def __init__(self, api_port: int | None, healthcheck: bool, consuming: bool) -> None:
        super().__init__()
        self.api_port = api_port
        self.healthcheck = healthcheck
        self.consuming = consuming

    def problem(self, container: WaitStrategyTarget) -> str | None:
        # The cheap checks first: the healthcheck starts a Python process in the container.
        wrapped = container.get_wrapped_container()
        if self.api_port is not None:
            problem = readyz_problem(host_port(wrapped, self.api_port))
            if problem:
                return problem
        if self.consuming and not CONSUMING.search(container_logs(wrapped)):
            level = container_environment(wrapped.attrs).get("LOG_LEVEL", "INFO").upper()
            if level not in QUIET_LOG_LEVELS:
                return "the worker has not logged that it consumes (`celery@... ready.`) yet"
        if self.healthcheck:
            command = healthcheck_command(wrapped.attrs)
            code = wrapped.exec_run(command).exit_code
            if code != 0:
                return f"`{' '.join(command)}` exited {code}"
        return None


def readyz_problem(port: int) -> str | None:
    """None when the API on 127.0.0.1:`port` answers /readyz with 200, else what it said."""
    url = f"http://{LOOPBACK}:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http
            return None if response.status == 200 else f"/readyz answered {response.status}"
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        try:
            detail = json.loads(body).get("detail", body)
        except (ValueError, AttributeError):
            detail = body
        return f"/readyz answered {error.code}: {str(detail)[:200]}"
    except (urllib.error.URLError, OSError) as error:
        return f"the API is not answering yet ({getattr(error, 'reason', error)})"


def healthcheck_command(attrs: Mapping[str, Any]) -> list[str]:
    """The container's HEALTHCHECK command (inherited from its image) as an exec argv;
    `courier healthcheck` when it has none."""
    test = (attrs["Config"].get("Healthcheck") or {}).get("Test") or []
    if test and test[0] == "CMD":
        return list(test[1:])
    if test and test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]]
    return ["courier", "healthcheck"]


def container_environment(attrs: Mapping[str, Any]) -> dict[str, str]:
    """The container's environment (its image's and its own)."""
    pairs = (entry.partition("=") for entry in attrs["Config"].get("Env") or [])
    return {name: value for name, _, value in pairs}


# -- courier -----------------------------------------------------------------------------------


class CourierContainer(DockerContainer):
    """One role of a courier image, `MODE=mode` (None: the image's default, `all`), with `env`
    and then `**settings` as its environment
    (`CourierContainer(image, "api", BROKER_URL=..., LOG_LEVEL="DEBUG")`).

    Runs read-only with a tmpfs on /tmp, no capabilities, no-new-privileges, as uid 65532. A role
    serving the API publishes it on 127.0.0.1; `API_TOKENS` is a random token unless given
    (`token`); log lines are written one by one unless `LOG_FLUSH_INTERVAL` is given (a test
    reads a job's lines the moment the job is done). `start()` waits until the role is ready
    (see `CourierReady`) unless `wait=False` (for a test of a container meant to fail or to
    stay unready); a container that never gets ready is removed, and `CourierStartError` says
    why.

        with CourierContainer("courier:latest") as courier:   # MODE=all: the embedded broker
            assert courier.client().run("demo.add", {"a": 2, "b": 3}) == 5
    """

    def __init__(
        self,
        image: str,
        mode: str | None = "all",
        *,
        name: str | None = None,
        network: Network | None = None,
        network_aliases: list[str] | None = None,
        labels: Mapping[str, str] | None = None,
        wait: bool = True,
        startup_timeout: float = STARTUP_TIMEOUT,
        docker_client_kw: dict[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        **settings: str,
    ) -> None:
        for key in settings:
            if not ENVIRONMENT_NAME.fullmatch(key):
                raise TypeError(
                    f"CourierContainer() got an unexpected keyword argument {key!r} "
                    "(settings are upper-case environment variables, e.g. LOG_LEVEL='DEBUG')"
                )
        environment = {**(env or {}), **settings}
        if mode is not None:
            environment["MODE"] = mode
        environment.setdefault("API_TOKENS", secrets.token_urlsafe(32))
        environment.setdefault("LOG_FLUSH_INTERVAL", "0")
        super().__init__(
            image,
            docker_client_kw=docker_client_kw,
            env=environment,
            name=name or f"courier-{mode or 'default'}-{uuid.uuid4().hex[:8]}",
            network=network,
            network_aliases=network_aliases,
        )
        self.mode = mode
        self.token = environment["API_TOKENS"].split(",")[0].strip()
        port = environment.get("PORT", "")
        self.port = int(port) if port.isdigit() else API_PORT
        self.labels = {LABEL: "true", **(labels or {})}
        self.with_tmpfs_mount("/tmp")  # noqa: S108 - a private tmpfs, as in production
        if self.serves_api:
            publish_on_loopback(self, self.port)
        self.readiness = CourierReady(
            api_port=self.port if self.serves_api else None,
            healthcheck=mode != "api",
            consuming=mode == "worker",
        ).with_startup_timeout(timedelta(seconds=startup_timeout))
        if wait:
            self.waiting_for(self.readiness)

    @property
    def serves_api(self) -> bool:
        return self.mode in API_MODES

    def _configure(self) -> None:
        # Applied at start, under whatever `with_kwargs` set (which replaces earlier kwargs).
        self._kwargs = {**HARDENING, **self._kwargs}
        add_labels(self, self.labels)

    def start(self) -> Self:
        try:
            return super().start()
        except BaseException:
            remove_container(self)
            raise

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        """Remove the container (and its anonymous volumes); nothing to do once it is gone,
        e.g. after a failed `start()` in a `with` block."""
        remove_container(self)

    def wait_until_ready(self) -> Self:
        """Wait as `start()` does (for a container started with `wait=False`); the container
        is left for its owner to remove if it never gets ready."""
        self.readiness.wait_until_ready(self)
        return self

    # -- reading it ----------------------------------------------------------------------------

    def api_url(self) -> str:
        """`http://127.0.0.1:<port>` of the API (roles `api` and `all`)."""
        if not self.serves_api:
            raise ValueError(f"a MODE={self.mode} container serves no API")
        return f"http://{LOOPBACK}:{host_port(self, self.port)}"

    def client(self) -> CourierClient:
        """A client of this container's API, with its token."""
        return CourierClient(self.api_url(), self.token)

    def logs(self) -> str:
        return container_logs(self)

    def json_logs(self) -> list[dict[str, Any]]:
        return json_logs(self)

    def healthcheck(self) -> int:
        """Run the image's healthcheck command in the container once; its exit code."""
        wrapped = self.get_wrapped_container()
        return int(wrapped.exec_run(healthcheck_command(wrapped.attrs)).exit_code)

    def exit_code(self, timeout: float = 60.0) -> int:
        """Wait (at most `timeout` seconds) for the container to exit; its exit code."""
        return exit_code(self, timeout)

    def version(self) -> BuildInfo:
        """Version, commit and build date as the running container reports them (what
        `courier version` and `GET /version` print)."""
        script = "import json; from courier.buildinfo import build_info; "
        script += "print(json.dumps(build_info().as_dict()))"
        result = self.get_wrapped_container().exec_run(["python", "-c", script])
        output = result.output.decode(errors="replace")
        if result.exit_code != 0:
            raise RuntimeError(f"reading the version failed ({result.exit_code}): {output}")
        return BuildInfo(**json.loads(output))

    def image_labels(self) -> dict[str, str]:
        """The labels of the image this container runs."""
        labels: dict[str, str] = self.get_wrapped_container().image.labels
        return labels

    def labeled_version(self) -> BuildInfo:
        """Version, commit and build date from the image's OCI labels (what `docker inspect`
        shows an operator)."""
        labels = self.image_labels()
        return BuildInfo(
            version=labels.get("org.opencontainers.image.version", UNKNOWN),
            commit=labels.get("org.opencontainers.image.revision", UNKNOWN),
            build_date=labels.get("org.opencontainers.image.created", UNKNOWN),
        )


# -- brokers -----------------------------------------------------------------------------------


def default_redis_image() -> str:
    """`REDIS_IMAGE` when set (as for the kit's compose file and builds), else `redis:8`."""
    return os.environ.get("REDIS_IMAGE") or "redis:8"


def default_rabbitmq_image() -> str:
    """`RABBITMQ_IMAGE` when set, else `rabbitmq:4`."""
    return os.environ.get("RABBITMQ_IMAGE") or "rabbitmq:4"


def redis_container(
    *args: str, image: str | None = None, startup_timeout: float = 60.0, **kwargs: Any
) -> DockerContainer:
    """A Redis server (not started; `start()` waits for it to accept connections), 6379
    published on 127.0.0.1. `args` are added to `redis-server`'s command line."""
    container = DockerContainer(image or default_redis_image(), **kwargs)
    container.with_command(["redis-server", "--protected-mode", "no", *args])
    ready = LogMessageReady("Ready to accept connections")
    container.waiting_for(ready.with_startup_timeout(timedelta(seconds=startup_timeout)))
    add_labels(container, {LABEL: "true"})
    return publish_on_loopback(container, 6379)


def rabbitmq_container(
    image: str | None = None, startup_timeout: float = 120.0, **kwargs: Any
) -> DockerContainer:
    """A RabbitMQ server (not started; `start()` waits for its start-up to complete), 5672
    published on 127.0.0.1."""
    container = DockerContainer(image or default_rabbitmq_image(), **kwargs)
    ready = LogMessageReady("Server startup complete")
    container.waiting_for(ready.with_startup_timeout(timedelta(seconds=startup_timeout)))
    add_labels(container, {LABEL: "true"})
    return publish_on_loopback(container, 5672)
