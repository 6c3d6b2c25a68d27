"""Helpers of the hostile-input and security tests: a small courier system on a private network,
Redis probes, problem+json checks, and a throwaway TLS CA for Redis.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import requests
import trustme
from testcontainers.core.container import DockerContainer

from courier.testing.containers import CourierContainer, json_logs, redis_container
from tests.stack import ApiClient, Stack

VENV_PYTHON = "/opt/venv/bin/python"
PROBLEM_JSON = "application/problem+json"
CERTS = "/certs"
# Celery's worker logs `Task <name>[<id>] received` for every task message it accepts.
RECEIVED = re.compile(r"^Task (?P<name>\S+)\[(?P<id>[^\]]+)\] received$")


def redis_urls(password: str | None = None, tls_query: str | None = None) -> dict[str, str]:
    """BROKER_URL (db 0) and RESULT_BACKEND (db 1) for the Redis at `redis:6379`; with
    `tls_query` (possibly empty), `rediss://` URLs with that query."""
    scheme = "redis" if tls_query is None else "rediss"
    auth = f":{password}@" if password else ""
    suffix = f"?{tls_query}" if tls_query else ""
    return {
        "BROKER_URL": f"{scheme}://{auth}redis:6379/0{suffix}",
        "RESULT_BACKEND": f"{scheme}://{auth}redis:6379/1{suffix}",
    }


def api_and_worker(
    system: Stack, env: dict[str, str], worker: bool = True, **kwargs: Any
) -> tuple[CourierContainer, CourierContainer | None, ApiClient]:
    """A published API (and a worker, consuming) with `env`, the API answering /readyz."""
    worker_container = system.courier("worker", env, **kwargs) if worker else None
    api = system.courier("api", env, **kwargs)
    client = system.api_client(api)
    client.wait_ready(timeout=90)
    if worker_container is not None:
        worker_container.wait_until_ready()
    return api, worker_container, client


def redis_cli(redis: DockerContainer, *args: str, password: str | None = None) -> str:
    """Run `redis-cli` inside the Redis container; its stdout, stripped."""
    auth = ["-a", password, "--no-auth-warning"] if password else []
    result = redis.exec(["redis-cli", *auth, *args])
    assert result.exit_code == 0, result.output
    output: bytes = result.output
    return output.decode(errors="replace").strip()


def received_tasks(worker: DockerContainer) -> list[tuple[str, str]]:
    """(task name, task id) of every task message the worker logged as received."""
    found = []
    for line in json_logs(worker):
        match = RECEIVED.match(str(line.get("event", "")))
        if match:
            found.append((match["name"], match["id"]))
    return found


def request_count(api: DockerContainer) -> int:
    """Requests the API logged (one access line, event "request", per request it answered)."""
    return sum(1 for line in json_logs(api) if line.get("event") == "request")


def check_problem(response: requests.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem with `status`; return its body."""
    where = f"{response.request.method} {response.request.url}"
    assert response.status_code == status, f"{where}: {response.status_code} {response.text}"
    media_type = response.headers.get("Content-Type", "").partition(";")[0]
    assert media_type == PROBLEM_JSON, f"{where}: Content-Type {media_type!r}"
    body: dict[str, Any] = response.json()
    assert body["status"] == status, body
    for member in ("type", "title", "detail"):
        assert isinstance(body.get(member), str), (member, body)
        assert body[member], (member, body)
    return body


def random_secret(length: int) -> str:
    """A random URL-safe string of exactly `length` characters."""
    return secrets.token_urlsafe(length)[:length]


# -- TLS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A test CA and a server certificate for the host name `redis`, written to `folder`."""

    folder: Path
    ca: str = f"{CERTS}/ca.pem"
    cert: str = f"{CERTS}/redis.pem"
    key: str = f"{CERTS}/redis.key"

    def mount(self) -> docker.types.Mount:
        """The folder bind-mounted read-only at /certs (for courier containers)."""
        return docker.types.Mount(
            target=CERTS, source=str(self.folder), type="bind", read_only=True
        )


def make_tls_files(folder: Path, hostname: str = "redis") -> TlsFiles:
    """Make a throwaway CA and a certificate for `hostname`, readable by any uid.

    The key is world-readable on purpose: it is a test key, and both Redis's user and uid 65532
    must read the bind-mounted files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert(hostname)
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(folder / "redis.pem"))
    server.private_key_pem.write_to_path(str(folder / "redis.key"))
    os.chmod(folder, 0o755)  # noqa: S103 - a throwaway test folder
    for path in folder.iterdir():
        os.chmod(path, 0o644)
    return TlsFiles(folder)


def tls_redis(system: Stack, tls: TlsFiles, *args: str, alias: str = "redis") -> DockerContainer:
    """A Redis that speaks only TLS on 6379 (clients need not present a certificate)."""
    container = redis_container(
        "--port",
        "0",
        "--tls-port",
        "6379",
        "--tls-cert-file",
        tls.cert,
        "--tls-key-file",
        tls.key,
        "--tls-ca-cert-file",
        tls.ca,
        "--tls-auth-clients",
        "no",
        *args,
    )
    container.with_volume_mapping(str(tls.folder), CERTS, "ro")
    return system.add_container(container, alias, container_name=f"{alias}-tls-{system.suffix}")
