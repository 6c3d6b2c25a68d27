"""`CourierStack`: a whole courier system from one image, for a test: a private Docker network,
the broker, the API, N workers and optionally beat, each role hardened as in production. The
stack is also the client of its API (`submit`, `wait`, `run`), and removes everything it
created on exit, after a failure too, a failure while starting included.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self

import docker.errors
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from courier.testing.client import CourierApi, CourierClient
from courier.testing.containers import (
    LABEL,
    LOOPBACK,
    STARTUP_TIMEOUT,
    CourierContainer,
    CourierStartError,
    add_labels,
    container_logs,
    host_port,
    rabbitmq_container,
    redis_container,
    remove_container,
    wait_all_ready,
)
from courier.testing.logs import parse_json_lines

Broker = Literal["redis", "rabbitmq"]
# Names every container and network of one stack with this label's value (the stack's name).
STACK_LABEL = "courier.testing.stack"
# What the roles are given, by broker; with RabbitMQ, Redis is the result backend (and beat lock).
BROKER_SETTINGS: dict[str, dict[str, str]] = {
    "redis": {"BROKER_URL": "redis://redis:6379/0", "RESULT_BACKEND": "redis://redis:6379/1"},
    "rabbitmq": {
        "BROKER_URL": "amqp://guest:guest@rabbitmq:5672//",
        "RESULT_BACKEND": "redis://redis:6379/1",
    },
}


class CourierStopError(RuntimeError):
    """Some of a stack's containers or its network could not be removed; `failures` holds
    what (`container <name>`, `network <name>`) and why."""

    def __init__(self, stack: str, failures: Sequence[tuple[str, Exception]]) -> None:
        self.failures = list(failures)
        listed = "; ".join(f"{what}: {type(error).__name__}: {error}" for what, error in failures)
        super().__init__(f"removing stack {stack} failed for {listed}")


class CourierStack(CourierApi):
    """A courier system on its own network: `broker` (`redis`, or `rabbitmq` with Redis as the
    result backend; None: none, for a test that adds its own), an API (`api=True`), `workers`
    workers and, with `beat=True`, beat. `env` is given to every courier role.

        with CourierStack("courier:latest", workers=2) as stack:
            assert stack.run("demo.add", {"a": 2, "b": 3}) == 5

    Broker images: `redis_image` / `rabbitmq_image`, by default `REDIS_IMAGE` / `RABBITMQ_IMAGE`
    when set, else `redis:8` / `rabbitmq:4`; `redis_args` are added to `redis-server`'s command
    line (e.g. `["--appendonly", "yes"]`). `startup_timeout` bounds the wait for each broker to
    get ready, then the wait for the roles, which get ready together (one that exits fails the
    start at once). Every container and the network carry the label
    `courier.testing.stack=<name>`; `API_TOKENS` is a random token (`token`) unless `env` sets it.
    """

    def __init__(
        self,
        image: str,
        broker: Broker | None = "redis",
        *,
        workers: int = 1,
        beat: bool = False,
        api: bool = True,
        env: Mapping[str, str] | None = None,
        redis_image: str | None = None,
        rabbitmq_image: str | None = None,
        redis_args: Sequence[str] = (),
        name: str | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        docker_client_kw: dict[str, Any] | None = None,
    ) -> None:
        if not image:
            raise ValueError("CourierStack needs the courier image to run")
        if broker is not None and broker not in BROKER_SETTINGS:
            raise ValueError(f"broker must be one of {sorted(BROKER_SETTINGS)} or None: {broker!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be a whole number of at least 0: {workers!r}")
        self.image = image
        self.broker = broker
        self.worker_count = workers
        self.with_api = api
        self.with_beat = beat
        self.redis_image = redis_image
        self.rabbitmq_image = rabbitmq_image
        self.redis_args = list(redis_args)
        self.name = name or f"courier-stack-{uuid.uuid4().hex[:8]}"
        self.labels = {LABEL: "true", STACK_LABEL: self.name}
        self.env = {
            "API_TOKENS": secrets.token_urlsafe(32),
            **BROKER_SETTINGS.get(broker or "", {}),
            **(env or {}),
        }
        self.token = self.env["API_TOKENS"].split(",")[0].strip()
        self.startup_timeout = startup_timeout
        self.docker_client_kw = docker_client_kw
        self.network: Network | None = None
        self.containers: list[DockerContainer] = []
        self.roles: dict[str, DockerContainer] = {}
        self.redis: DockerContainer | None = None
        self.rabbitmq: DockerContainer | None = None
        self.api: CourierContainer | None = None
        self.workers: list[CourierContainer] = []
        self.beat: CourierContainer | None = None

    # -- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Network, broker(s) (ready), then every role at once; returns when all are ready.
        On any failure, everything created so far is removed before the error is raised."""
        try:
            self._create_network()
            if self.broker == "rabbitmq":
                rabbitmq = rabbitmq_container(self.rabbitmq_image, self.startup_timeout)
                self.rabbitmq = self.add_container(rabbitmq, "rabbitmq")
            if self.broker is not None:
                redis = redis_container(
                    *self.redis_args, image=self.redis_image, startup_timeout=self.startup_timeout
                )
                self.redis = self.add_container(redis, "redis")
            roles = [("api", "api")] if self.with_api else []
            roles += [("worker", f"worker-{n}") for n in range(1, self.worker_count + 1)]
            roles += [("beat", "beat")] if self.with_beat else []
            started = [self.add_courier(mode, alias=alias, wait=False) for mode, alias in roles]
            # Together: a role that exits is reported at once, not after another's timeout.
            wait_all_ready(
                [(container.readiness, container) for container in started],
                self.startup_timeout,
                watch=[broker for broker in (self.rabbitmq, self.redis) if broker is not None],
            )
        except BaseException as error:
            try:
                self.stop()
            except Exception as cleanup:
                error.add_note(f"then {cleanup}")
            raise
        return self

    def stop(self) -> None:
        """Remove every container (with its anonymous volumes), then the network. Safe to call
        again; a container already gone is skipped. Whatever fails to be removed does not keep
        the rest: `CourierStopError` then lists each failure, and what failed is kept for
        another `stop()`."""
        failures: list[tuple[str, Exception]] = []
        kept: list[DockerContainer] = []
        for container in reversed(self.containers):
            try:
                remove_container(container)
            except Exception as error:
                failures.append((f"container {container._name}", error))
                kept.insert(0, container)
        self.containers = kept
        self.roles.clear()
        self.workers.clear()
        self.redis = self.rabbitmq = self.api = self.beat = None
        if self.network is not None:
            try:
                self.network.remove()
            except docker.errors.NotFound:
                self.network = None
            except Exception as error:
                failures.append((f"network {self.network.name}", error))
            else:
                self.network = None
        if failures:
            raise CourierStopError(self.name, failures) from failures[0][1]

    def _create_network(self) -> None:
        network = Network(
            docker_client_kw=self.docker_client_kw, docker_network_kw={"labels": self.labels}
        )
        network.name = self.name
        network.create()
        self.network = network

    # -- adding containers ---------------------------------------------------------------------

    def add_container(
        self, container: DockerContainer, alias: str, *, container_name: str | None = None
    ) -> DockerContainer:
        """Start `container` (not started yet) on the stack's network, reachable there as
        `alias`, labelled and named `<stack>-<alias>` (or `container_name`), removed with the
        stack. Its own wait strategy, if any, runs as part of its start."""
        if self.network is None:
            raise RuntimeError(f"stack {self.name} is not started")
        if alias in self.roles:
            raise ValueError(f"stack {self.name} already has a container {alias!r}")
        container.with_network(self.network).with_network_aliases(alias)
        container.with_name(container_name or f"{self.name}-{alias}")
        add_labels(container, self.labels)
        self.containers.append(container)
        self.roles[alias] = container
        try:
            container.start()
        except docker.errors.APIError as error:
            # The engine refused to create or run it (no such image, no such command...).
            reason = f"could not be started: {error.explanation or error}"
            raise CourierStartError(container._name or alias, reason) from error
        return container

    def add_courier(
        self,
        mode: str | None,
        env: Mapping[str, str] | None = None,
        *,
        alias: str | None = None,
        name: str | None = None,
        wait: bool = True,
        **create_kwargs: Any,
    ) -> CourierContainer:
        """Start one more courier role on the stack (a second worker mid-test, a role with other
        settings...): the stack's settings, then `env`. `create_kwargs` go to Docker's container
        create (e.g. `mounts=[...]`). `wait=False` returns once it is started."""
        alias = alias or self._free_alias(mode or "all")
        container = CourierContainer(
            self.image,
            mode,
            labels=self.labels,
            wait=False,
            startup_timeout=self.startup_timeout,
            docker_client_kw=self.docker_client_kw,
            env={**self.env, **(env or {})},
        )
        if create_kwargs:
            container.with_kwargs(**create_kwargs)
        self.add_container(container, alias, container_name=name)
        if mode == "api" and self.api is None:
            self.api = container
        elif mode == "worker":
            self.workers.append(container)
        elif mode == "beat" and self.beat is None:
            self.beat = container
        if wait:
            container.wait_until_ready()
        return container

    def _free_alias(self, base: str) -> str:
        """`base` if no container has it yet (workers are always numbered: `worker-2`)."""
        if base != "worker" and base not in self.roles:
            return base
        number = 1 if base == "worker" else 2
        while f"{base}-{number}" in self.roles:
            number += 1
        return f"{base}-{number}"

    # -- the client: submit, job, wait, run and get (CourierApi) through the API container ---

    def client(self) -> CourierClient:
        """A client of the stack's API, with the stack's token."""
        if self.api is None:
            raise RuntimeError(f"stack {self.name} has no API")
        return self.api.client()

    def api_url(self) -> str:
        """`http://127.0.0.1:<port>` of the stack's API."""
        return self.client().base_url

    def redis_url(self, db: int = 0) -> str:
        """The stack's Redis as the host reaches it (127.0.0.1), e.g. to look at queues."""
        if self.redis is None:
            raise RuntimeError(f"stack {self.name} has no Redis")
        return f"redis://{LOOPBACK}:{host_port(self.redis, 6379)}/{db}"

    # -- logs ----------------------------------------------------------------------------------

    def logs(self, role: str) -> str:
        """A container's log by role (`api`, `worker-1`, `beat`, `redis`, `rabbitmq`, or an
        alias given to `add_courier`); `worker` is every worker's log, one after the other."""
        if role == "worker" and role not in self.roles and self.workers:
            return "".join(container_logs(worker) for worker in self.workers)
        container = self.roles.get(role)
        if container is None:
            known = sorted(self.roles) + (["worker"] if self.workers else [])
            raise KeyError(f"stack {self.name} has no role {role!r}; it has {known}")
        return container_logs(container)

    def json_logs(self, role: str) -> list[dict[str, Any]]:
        """The JSON log lines of `role` (see `logs`)."""
        return parse_json_lines(self.logs(role))
