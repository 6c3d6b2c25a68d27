"""Security of the image and its processes: every role hardened (here and in compose.yaml), no
secret in the image or in any log, and Redis with a password and over TLS. Every test prints
what it measured.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import docker
import pytest
from testcontainers.core.container import DockerContainer

from courier.testing.containers import container_logs, json_logs
from tests.conftest import ROOT
from tests.faults.security_support import (
    CERTS,
    VENV_PYTHON,
    api_and_worker,
    check_problem,
    make_tls_files,
    random_secret,
    redis_cli,
    redis_urls,
    tls_redis,
)
from tests.stack import ApiClient, Stack, wait_until

ROLES = ("api", "worker", "beat")
UID = "65532"
NO_CAPABILITIES = "0000000000000000"
BEAT_LOCK_HELD = "holding the beat lock; sending periodic jobs"

# Run inside a container as its own user: who am I, who are all processes, what may I write.
PROBE = r"""
import errno, json, os
processes = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/status") as handle:
            fields = dict(line.split(":", 1) for line in handle.read().splitlines() if ":" in line)
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        continue
    processes[pid] = {key: fields[key].split() for key in
                      ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs")}
    processes[pid]["command"] = command[:80]
writes = {}
for path in ("/x", "/etc/x", "/opt/venv/x", "/tmp/x"):
    try:
        with open(path, "w") as handle:
            handle.write("x")
        writes[path] = "written"
    except OSError as error:
        writes[path] = errno.errorcode.get(error.errno, str(error.errno))
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "processes": processes,
                  "writes": writes}))
"""


def probe(container: DockerContainer) -> dict[str, Any]:
    result = container.get_wrapped_container().exec_run([VENV_PYTHON, "-c", PROBE])
    output: bytes = result.output
    assert result.exit_code == 0, output.decode(errors="replace")
    report: dict[str, Any] = json.loads(output)
    return report


def wait_beat_lock(beat: DockerContainer, timeout: float = 90.0) -> float:
    return wait_until(
        lambda: any(line.get("event") == BEAT_LOCK_HELD for line in json_logs(beat)),
        timeout,
        what="beat holding its Redis lock",
    )


@pytest.mark.timeout(300)
def test_every_role_runs_read_only_without_capabilities_as_65532(courier_image: str) -> None:
    with Stack(courier_image) as system:
        system.add_redis()
        env = redis_urls()
        roles = {role: system.courier(role, env) for role in ROLES}
        system.api_client(roles["api"]).wait_healthy()
        roles["worker"].wait_until_ready()
        wait_beat_lock(roles["beat"])
        for role, container in roles.items():
            wrapped = container.get_wrapped_container()
            wrapped.reload()
            host = wrapped.attrs["HostConfig"]
            assert host["ReadonlyRootfs"] is True
            assert host["CapDrop"] == ["ALL"]
            assert not host.get("CapAdd")
            assert host["Privileged"] is False
            assert set(host["SecurityOpt"]) & {"no-new-privileges", "no-new-privileges:true"}
            assert "/tmp" in host["Tmpfs"]
            assert wrapped.attrs["Config"]["User"] == f"{UID}:{UID}"

            report = probe(container)
            processes = report["processes"]
            print(
                f"\n{role}: exec as uid {report['uid']} gid {report['gid']}; writes "
                f"{report['writes']}; {len(processes)} processes: "
                + "; ".join(
                    f"{pid} uid={'/'.join(p['Uid'])} CapEff={p['CapEff'][0]} "
                    f"NoNewPrivs={p['NoNewPrivs'][0]} {p['command'][:40]!r}"
                    for pid, p in sorted(processes.items(), key=lambda item: int(item[0]))
                )
            )
            assert (report["uid"], report["gid"]) == (int(UID), int(UID))
            assert "1" in processes, "PID 1 (the role's server) is not visible"
            for process in processes.values():
                assert set(process["Uid"]) == {UID}, process
                assert set(process["Gid"]) == {UID}, process
                for capabilities in ("CapEff", "CapPrm", "CapBnd"):
                    assert process[capabilities] == [NO_CAPABILITIES], process
                assert process["NoNewPrivs"] == ["1"], process
            assert report["writes"] == {
                "/x": "EROFS",
                "/etc/x": "EROFS",
                "/opt/venv/x": "EROFS",
                "/tmp/x": "written",
            }


def test_compose_runs_every_role_hardened() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", "compose.yaml", "config", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    services = json.loads(result.stdout)["services"]
    for role in ROLES:
        service = services[role]
        hardening = {
            key: service.get(key) for key in ("read_only", "cap_drop", "security_opt", "tmpfs")
        }
        print(f"\ncompose {role}: {hardening}, user {service.get('user')}")
        assert service.get("read_only") is True
        assert service.get("cap_drop") == ["ALL"]
        assert set(service.get("security_opt", [])) & {
            "no-new-privileges",
            "no-new-privileges:true",
        }
        assert "/tmp" in [str(mount).partition(":")[0] for mount in service.get("tmpfs", [])]
        assert str(service.get("user", "")).partition(":")[0] == UID
        assert not service.get("privileged")
        assert not service.get("cap_add")


# -- secrets -------------------------------------------------------------------------------------

SECRET_VARIABLES = ("API_TOKENS", "BROKER_URL", "RESULT_BACKEND", "BEAT_LOCK_URL")
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@", re.IGNORECASE)


def image_texts(docker_client: docker.DockerClient, image: str) -> dict[str, str]:
    """What an image tells anyone who pulls it: history, labels, baked-in environment."""
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    config = docker_client.images.get(image).attrs["Config"]
    return {
        "history": history,
        "labels": json.dumps(config.get("Labels") or {}),
        "env": "\n".join(config.get("Env") or []),
    }


@pytest.mark.timeout(300)
def test_no_secret_in_the_image_or_in_any_log(
    docker_client: docker.DockerClient, courier_image: str
) -> None:
    token, second_token = random_secret(40), random_secret(32)  # every token is kept secret
    password = secrets.token_hex(20)
    texts = image_texts(docker_client, courier_image)
    baked = [line.partition("=")[0] for line in texts["env"].splitlines()]
    print(
        f"\nimage: {len(texts['history'].splitlines())} history steps, "
        f"{len(json.loads(texts['labels']))} labels, environment {baked}"
    )
    assert not set(baked) & set(SECRET_VARIABLES)
    for where, text in texts.items():
        assert not URL_WITH_PASSWORD.search(text), where
        assert token not in text, where
        assert second_token not in text, where
        assert password not in text, where

    with Stack(courier_image) as system:
        redis = system.add_redis("--requirepass", password)
        # DEBUG: the most each role ever logs.
        env = {
            **redis_urls(password=password),
            "API_TOKENS": f"{token},{second_token}",
            "LOG_LEVEL": "DEBUG",
        }
        api, worker, _ = api_and_worker(system, env)
        client = ApiClient(system.api_client(api).base_url, token)
        beat = system.courier("beat", env)
        ready = client.http_get("/readyz")
        assert ready.status_code == 200, ready.text
        job = client.wait(client.submit("demo.add", {"a": 1.5, "b": 2}), timeout=60)
        assert (job["state"], job["result"]) == ("SUCCESS", 3.5), job
        wait_beat_lock(beat)
        # The password is really required (so the round trip above used it).
        anonymous: bytes = redis.exec(["redis-cli", "ping"]).output
        assert b"NOAUTH" in anonymous, anonymous
        assert redis_cli(redis, "ping", password=password) == "PONG"

        # What Celery's remote control and Flower show: the worker's configuration and state.
        assert worker is not None
        control = {}
        celery = [VENV_PYTHON, "-m", "celery", "--app", "courier.queue.main"]
        for command in (["inspect", "conf"], ["inspect", "stats"], ["inspect", "registered"]):
            result = worker.exec([*celery, *command, "--json"])
            answer = bytes(result.output).decode(errors="replace")
            assert result.exit_code == 0, answer[-2000:]
            control[" ".join(command)] = answer
        assert "broker_url" in control["inspect conf"], control["inspect conf"][:500]
        assert "courier_settings" not in control["inspect conf"]

        containers = {"api": api, "worker": worker, "beat": beat, "redis": redis}
        logs = {
            role: container_logs(container) for role, container in containers.items() if container
        }
        logs.update({f"celery {command}": answer for command, answer in control.items()})
        found = {
            role: {
                "token": text.count(token) + text.count(second_token),
                "password": text.count(password),
            }
            for role, text in logs.items()
        }
        redacted = sorted(
            {m.group(0) for text in logs.values() for m in re.finditer(r"redis://:\*+@redis", text)}
        )
        sizes = {role: len(text.splitlines()) for role, text in logs.items()}
        print(
            f"readyz {ready.status_code}, job {job['state']}; log lines {sizes}; occurrences "
            f"{found}; URLs logged as {redacted}; Redis without the password: "
            f"{anonymous.decode().strip()!r}"
        )
        assert found == {role: {"token": 0, "password": 0} for role in logs}


# -- Redis over TLS ------------------------------------------------------------------------------

TLS_CASES = {
    # The documented form: verify the server against a CA file.
    "required+ca": (False, f"ssl_cert_reqs=required&ssl_ca_certs={CERTS}/ca.pem"),
    # ssl_cert_reqs left out: courier verifies anyway (required); with a password too.
    "ca-only+password": (True, f"ssl_ca_certs={CERTS}/ca.pem"),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("with_password", "query"), TLS_CASES.values(), ids=TLS_CASES.keys())
def test_a_job_round_trip_through_redis_over_tls(
    courier_image: str, tmp_path: Path, with_password: bool, query: str
) -> None:
    tls = make_tls_files(tmp_path / "certs")
    password = secrets.token_hex(16) if with_password else None
    with Stack(courier_image) as system:
        redis = tls_redis(system, tls, *(["--requirepass", password] if password else []))
        env = redis_urls(password=password, tls_query=query)
        api, worker, client = api_and_worker(system, env, mounts=[tls.mount()])
        beat = system.courier("beat", env, mounts=[tls.mount()])
        ready = client.http_get("/readyz")
        assert ready.status_code == 200, ready.text
        job = client.wait(client.submit("demo.add", {"a": 2, "b": 3}), timeout=60)
        assert (job["state"], job["result"]) == ("SUCCESS", 5), job
        waited = wait_beat_lock(beat)
        # Redis speaks only TLS: the round trip above went over it.
        auth = ["-a", password, "--no-auth-warning"] if password else []
        plain: bytes = redis.exec(["redis-cli", "-h", "redis", *auth, "ping"]).output
        secure: bytes = redis.exec(
            ["redis-cli", "-h", "redis", "--tls", "--cacert", tls.ca, *auth, "ping"]
        ).output
        assert secure.strip() == b"PONG"
        assert b"PONG" not in plain
        logs = "".join(container_logs(c) for c in (api, worker, beat) if c)
        print(
            f"\nBROKER_URL={env['BROKER_URL'].replace(password or '@@', '***')}: readyz "
            f"{ready.json()}, job {job['state']} result {job['result']}, beat lock after "
            f"{waited:.1f}s; plaintext ping {plain.decode(errors='replace').strip()[:60]!r}, "
            f"TLS ping {secure.decode().strip()!r}; insecure-TLS warnings in logs: "
            f"{logs.count('insecure SSL')}"
        )
        assert "insecure SSL" not in logs  # kombu's warning when it would not verify


@pytest.mark.timeout(300)
def test_redis_over_tls_with_an_unknown_ca_is_refused(courier_image: str, tmp_path: Path) -> None:
    """`rediss://` without a CA file: verified against the system CAs, which do not know the
    test CA, so nothing connects (verification is on by default)."""
    tls = make_tls_files(tmp_path / "certs")
    with Stack(courier_image) as system:
        tls_redis(system, tls)
        env = redis_urls(tls_query="")
        worker = system.courier("worker", env, mounts=[tls.mount()])
        api = system.courier("api", env, mounts=[tls.mount()])
        client = system.api_client(api)
        client.wait_healthy()
        ready = client.http_get("/readyz", timeout=30)
        body = check_problem(ready, 503)
        submitted = client.session.post(
            client.base_url + "/v1/jobs",
            json={"task": "demo.add", "args": {"a": 1, "b": 1}},
            timeout=30,
        )
        check_problem(submitted, 503)
        wait_until(
            lambda: "CERTIFICATE_VERIFY_FAILED" in container_logs(worker),
            60,
            what="the worker refusing the certificate",
        )
        print(
            f"\nBROKER_URL={env['BROKER_URL']} (test CA not given): readyz 503 "
            f"{body['checks']}, submit 503; worker log: CERTIFICATE_VERIFY_FAILED"
        )
        assert body["checks"] == {"broker": "unreachable", "result_backend": "unreachable"}


BAD_URLS = {
    "unknown ssl_cert_reqs": "rediss://redis:6379/0?ssl_cert_reqs=sometimes",
    "CERT_REQUIRED (not read by redis-py)": "rediss://redis:6379/0?ssl_cert_reqs=CERT_REQUIRED",
    "TLS options on redis://": f"redis://redis:6379/0?ssl_ca_certs={CERTS}/ca.pem",
}


@pytest.mark.timeout(300)
def test_bad_tls_options_stop_a_role_at_start(courier_image: str) -> None:
    with Stack(courier_image) as system:
        for label, url in BAD_URLS.items():
            container = system.courier("worker", {"BROKER_URL": url})
            code = container.exit_code(timeout=60)
            stderr = container.get_wrapped_container().logs(stdout=False, stderr=True).decode()
            print(f"\n{label}: exit {code}, {stderr.strip()!r}")
            assert code == 78, stderr  # EX_CONFIG
            assert "BROKER_URL: ssl_" in stderr, stderr
