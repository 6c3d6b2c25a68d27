"""Hostile input against the built image and a real Redis: fuzzing from the OpenAPI document,
malformed and oversized requests, internal task names, a pickled message put on the queue by
hand, and bad bearer tokens. Every test prints what it measured.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery

from courier.testing.containers import container_logs, json_logs
from tests.faults.security_support import (
    api_and_worker,
    check_problem,
    received_tasks,
    redis_cli,
    redis_urls,
    request_count,
)
from tests.stack import Stack, wait_until

# -- fuzzing -------------------------------------------------------------------------------------

FUZZ_SEED = 20240611
FUZZ_MAX_EXAMPLES = 100  # per operation and phase; about 900 test cases over the 7 operations
MIN_FUZZ_REQUESTS = 500


@pytest.mark.timeout(900)
def test_fuzzing_from_the_openapi_document_finds_no_server_error(
    courier_image: str, tmp_path: Path
) -> None:
    """Schemathesis, every check, against api + worker + Redis: no 5xx, nothing off-document."""
    with Stack(courier_image) as system:
        system.add_redis()
        api, _, client = api_and_worker(system, redis_urls())
        before = request_count(api)
        report_dir = tmp_path / "report"
        # Every check stays on: `--checks all` (no exclusion was needed).
        command = [
            str(Path(sys.executable).with_name("st")),
            "run",
            f"{client.base_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(FUZZ_MAX_EXAMPLES),
            "--seed",
            str(FUZZ_SEED),
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--no-color",
            "--header",
            f"Authorization: Bearer {system.token}",
            "--report",
            "json",
            "--report-dir",
            str(report_dir),
        ]
        started = time.monotonic()
        result = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=780, check=False
        )
        elapsed = time.monotonic() - started
        lines = [line for line in json_logs(api) if line.get("event") == "request"][before:]
        statuses = Counter(int(line["status"]) for line in lines)
        report = json.loads(next(report_dir.glob("*.json")).read_text())
        summary = "\n".join(result.stdout.splitlines()[-30:])
        print(
            f"\nschemathesis: exit {result.returncode} in {elapsed:.1f}s, seed {FUZZ_SEED}, "
            f"{report['test_cases']['generated']} test cases, {len(lines)} requests reached the "
            f"API; statuses {dict(sorted(statuses.items()))}; failures {report['failures']}"
        )
        assert result.returncode == 0, f"{summary}\n{result.stderr[-3000:]}"
        assert not report["failures"], report["failures"]
        assert len(lines) >= MIN_FUZZ_REQUESTS, f"only {len(lines)} requests were made"
        assert not [s for s in statuses if s >= 500], statuses
        assert not [line for line in json_logs(api) if line.get("event") == "unhandled error"]


# -- malformed, oversized and forbidden requests ------------------------------------------------

LIMIT = 65536  # MAX_BODY_BYTES's default
INTERNAL_TASKS = (
    "celery.backend_cleanup",
    "celery.chord_unlock",
    "celery.accumulate",
    "celery.group",
    "celery.chain",
    "celery.chord",
    "celery.map",
    "celery.starmap",
    "celery.chunks",
    "demo.heartbeat",
)
UNKNOWN_TASKS = ("nope.nothing", "demo.add ", "DEMO.ADD", "demo", "", "demo.add\u0000", "os.system")


@dataclass(frozen=True)
class Case:
    label: str
    status: int
    method: str = "POST"
    path: str = "/v1/jobs"
    body: bytes | None = None
    content_type: str | None = "application/json"
    chunked: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def submission(task: Any, args: Any = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"task": task, **extra}
    if args is not None:
        body["args"] = args
    return json.dumps(body).encode()


def raw_submission(task: str, args_json: str) -> bytes:
    """A body with a literal `args` text (for numbers `json.dumps` would not write)."""
    return f'{{"task": "{task}", "args": {args_json}}}'.encode()


def hostile_cases() -> list[Case]:
    padding = "x" * LIMIT
    cases = [
        # Oversized: declared by Content-Length, or streamed chunked without one.
        Case("oversized body", 413, body=submission("demo.add", {"a": 1, "b": 2}, pad=padding)),
        Case("body one byte too long", 413, body=b" " * (LIMIT - 1) + b"{}"),
        Case("oversized chunked body", 413, body=b"[" + b"0," * (LIMIT // 2) + b"0]", chunked=True),
        # Deeply nested JSON: rejected as malformed (400), never a RecursionError (500).
        Case("nested arrays 30000 deep", 400, body=b"[" * 30000 + b"]" * 30000),
        Case("nested objects 10000 deep", 400, body=b'{"a":' * 10000 + b"1" + b"}" * 10000),
        Case(
            "nested arrays as an argument",
            422,
            body=raw_submission("demo.add", '{"a": ' + "[" * 500 + "]" * 500 + ', "b": 1}'),
        ),
        Case("truncated JSON", 400, body=b'{"task": "demo.add", "args": {'),
        Case("not UTF-8", 400, body=b"\xff\xfe\xfa\x00{"),
        Case(
            "a 5000-digit integer",
            400,
            body=raw_submission("demo.sleep", '{"seconds": 1' + "0" * 5000 + "}"),
        ),
        # Wrong content types: 415 whatever the body holds.
        Case(
            "text/plain",
            415,
            body=submission("demo.add", {"a": 1, "b": 2}),
            content_type="text/plain",
        ),
        Case(
            "form-encoded",
            415,
            body=b"task=demo.add&args=1",
            content_type="application/x-www-form-urlencoded",
        ),
        Case(
            "pickle",
            415,
            body=pickle.dumps({"task": "demo.add", "args": {"a": 1, "b": 2}}),
            content_type="application/x-python-serialize",
        ),
        Case("multipart", 415, body=b"--x--\r\n", content_type="multipart/form-data; boundary=x"),
        Case(
            "no content type", 415, body=submission("demo.add", {"a": 1, "b": 2}), content_type=None
        ),
        Case("application/jsonx", 415, body=b"{}", content_type="application/jsonx"),
        # Not a submission.
        Case("a JSON array", 422, body=b"[]"),
        Case("a JSON string", 422, body=b'"demo.add"'),
        Case("JSON null", 422, body=b"null"),
        Case("an extra member", 422, body=submission("demo.add", {"a": 1, "b": 2}, queue="x")),
        Case("task not a string", 422, body=submission(["demo.add"], {})),
        Case("args not an object", 422, body=submission("demo.add", [1, 2])),
        # demo.sleep's declared bounds are 0..60 seconds.
        Case("sleep -1", 422, body=submission("demo.sleep", {"seconds": -1})),
        Case("sleep 61", 422, body=submission("demo.sleep", {"seconds": 61})),
        Case("sleep 1e308", 422, body=submission("demo.sleep", {"seconds": 1e308})),
        Case(
            "sleep 10**400",
            422,
            body=raw_submission("demo.sleep", '{"seconds": 1' + "0" * 400 + "}"),
        ),
        Case("sleep -1e-300", 422, body=submission("demo.sleep", {"seconds": -1e-300})),
        Case("sleep Infinity", 422, body=raw_submission("demo.sleep", '{"seconds": Infinity}')),
        Case("sleep 1e400 (inf)", 422, body=raw_submission("demo.sleep", '{"seconds": 1e400}')),
        Case("sleep NaN", 422, body=raw_submission("demo.sleep", '{"seconds": NaN}')),
        Case("sleep as a string", 422, body=submission("demo.sleep", {"seconds": "5"})),
        Case("sleep true", 422, body=submission("demo.sleep", {"seconds": True})),
        Case("sleep null", 422, body=submission("demo.sleep", {"seconds": None})),
        Case("sleep without seconds", 422, body=submission("demo.sleep", {})),
        Case("sleep with an extra arg", 422, body=submission("demo.sleep", {"seconds": 1, "x": 1})),
        Case("flaky 1.5 failures", 422, body=submission("demo.flaky", {"failures": 1.5})),
        Case("flaky 10**30 failures", 422, body=submission("demo.flaky", {"failures": 10**30})),
        # Methods the resources do not have.
        Case("PUT /v1/jobs", 405, method="PUT", body=b"{}"),
        Case("DELETE a job", 405, method="DELETE", path=f"/v1/jobs/{uuid.uuid4()}"),
    ]
    for name in INTERNAL_TASKS + UNKNOWN_TASKS:
        cases.append(Case(f"task {name!r}", 422, body=submission(name, {})))
        cases.append(Case(f"task {name!r} without args", 422, body=submission(name)))
    not_ids = [
        "not-an-id",
        "1",
        uuid.uuid4().hex,  # 32 hex digits, no dashes
        "{" + str(uuid.uuid4()) + "}",
        str(uuid.uuid4()).upper(),  # a well-formed id that was never submitted
        "00000000-0000-0000-0000-000000000000",
        "x" * 36,
        "*",
        "courier-job-*",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%27%3B%20DROP%20TABLE%20jobs%3B--",
        "%C3%BCn%C3%AFc%C3%B6d%C3%A9",
        "%00",
        "a" * 1000,
    ]
    for raw in not_ids:
        cases.append(Case(f"job id {raw[:40]!r}", 404, method="GET", path=f"/v1/jobs/{raw}"))
    return cases


def send(session: requests.Session, base_url: str, case: Case) -> requests.Response:
    headers = dict(case.headers)
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    data: bytes | Iterator[bytes] | None = case.body
    if case.chunked and case.body is not None:
        body = case.body
        data = iter([body[i : i + 8192] for i in range(0, len(body), 8192)])
    return session.request(
        case.method, base_url + case.path, data=data, headers=headers, timeout=30
    )


@pytest.mark.timeout(600)
def test_hostile_requests_get_clear_problems_and_never_reach_the_worker(
    courier_image: str,
) -> None:
    with Stack(courier_image) as system:
        redis = system.add_redis()
        env = redis_urls()
        # The API alone first: whatever it queued would wait in Redis for us to count.
        api, _, client = api_and_worker(system, env, worker=False)
        cases = hostile_cases()
        outcomes: list[str] = []
        for case in cases:
            response = send(client.session, client.base_url, case)
            body = check_problem(response, case.status)
            outcomes.append(f"  {response.status_code} {case.label}: {body['detail'][:70]}")
        print(f"\n{len(cases)} hostile requests, each a problem+json with the expected status:")
        print("\n".join(outcomes))
        queued = int(redis_cli(redis, "LLEN", "celery"))
        records = redis_cli(redis, "-n", "1", "KEYS", "courier-job-*")
        print(f"queued after the batch: LLEN celery = {queued}; job records: {records!r}")
        assert queued == 0
        assert records == ""
        assert not [line for line in json_logs(api) if line.get("event") == "unhandled error"]

        # The probe can fail: one valid job is queued and counted, then run by a worker.
        control = client.submit("demo.add", {"a": 20, "b": 22})
        assert int(redis_cli(redis, "LLEN", "celery")) == 1
        worker = system.courier("worker", env)
        worker.wait_until_ready()
        assert client.wait(control, timeout=60)["result"] == 42
        # A sentinel queued after everything else: the queue is first in, first out, so once the
        # worker has run it, anything queued before it has been received (and logged) too.
        sentinel = client.submit("demo.add", {"a": 1, "b": 2})
        assert client.wait(sentinel, timeout=60)["result"] == 3
        wait_until(
            lambda: ("demo.add", sentinel) in received_tasks(worker),
            30,
            what="the worker logging the sentinel received",
        )
        received = received_tasks(worker)
        print(f"the worker received: {received}")
        assert received == [("demo.add", control), ("demo.add", sentinel)]
        forbidden = set(INTERNAL_TASKS + UNKNOWN_TASKS)
        assert not [name for name, _ in received if name in forbidden]
        assert int(redis_cli(redis, "LLEN", "celery")) == 0


# -- a pickled message on the queue --------------------------------------------------------------


def publish_by_hand(
    broker_url: str,
    task_id: str,
    serializer: str,
    args: tuple[Any, ...],
    task: str = "demo.add",
    kwargs: dict[str, Any] | None = None,
) -> None:
    """Put a Celery protocol-2 message on the `celery` queue, bypassing the API."""
    app = Celery("hostile", broker=broker_url, set_as_current=False)
    headers, properties, body, _ = app.amqp.create_task_message(task_id, task, args, kwargs or {})
    queue = app.amqp.queues["celery"]  # Celery's default queue, as the worker declares it
    with app.connection_for_write() as connection:
        connection.Producer().publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            serializer=serializer,
            headers=headers,
            declare=[queue],
            retry=True,
            **properties,
        )


@pytest.mark.timeout(300)
def test_a_pickled_message_is_refused_by_the_worker_and_never_run(courier_image: str) -> None:
    with Stack(courier_image) as system:
        redis = system.add_redis()
        worker = system.courier("worker", redis_urls())
        worker.wait_until_ready()
        broker = f"redis://127.0.0.1:{redis.get_exposed_port(6379)}/0"
        refusal = "Refusing to deserialize untrusted content of type pickle"

        pickled, control = str(uuid.uuid4()), str(uuid.uuid4())
        publish_by_hand(broker, pickled, "pickle", (), kwargs={"a": 400, "b": 2})
        waited = wait_until(
            lambda: refusal in container_logs(worker), 60, what="the worker refusing the pickle"
        )
        # The same message as JSON is run: the harness can tell a run task from a refused one.
        publish_by_hand(broker, control, "json", (), kwargs={"a": 40, "b": 2})
        wait_until(
            lambda: any(
                line.get("event") == "added" and line.get("task_id") == control
                for line in json_logs(worker)
            ),
            60,
            what="the JSON control message run",
        )
        lines = json_logs(worker)
        refusals = [line for line in lines if refusal in str(line.get("event", ""))]
        ran = [line for line in lines if line.get("task_id") == pickled]
        received = received_tasks(worker)
        stored = {
            task_id: int(redis_cli(redis, "-n", "1", "EXISTS", f"celery-task-meta-{task_id}"))
            for task_id in (pickled, control)
        }
        print(
            f"\npickle refused after {waited:.1f}s: {len(refusals)} refusal line(s) "
            f"({refusals[0]['level'] if refusals else '-'}: {refusal!r}); lines about the pickled "
            f"task: {len(ran)}; received: {received}; results stored: {stored}; "
            f"LLEN celery = {redis_cli(redis, 'LLEN', 'celery')}"
        )
        assert len(refusals) == 1
        assert ran == []
        assert received == [("demo.add", control)]
        assert stored == {pickled: 0, control: 1}
        assert redis_cli(redis, "LLEN", "celery") == "0"  # refused, not put back


# -- bad bearer tokens ---------------------------------------------------------------------------


def one_character_off(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


@pytest.mark.timeout(300)
def test_bad_tokens_get_401_and_no_token_is_ever_logged(courier_image: str) -> None:
    with Stack(courier_image) as system:
        redis = system.add_redis()
        # DEBUG: the most the API ever logs.
        api, _, client = api_and_worker(
            system, {**redis_urls(), "LOG_LEVEL": "DEBUG"}, worker=False
        )
        real = system.token
        wrong = uuid.uuid4().hex + uuid.uuid4().hex
        near = one_character_off(real)
        offers: dict[str, str | None] = {
            "no Authorization header": None,
            "a wrong token": f"Bearer {wrong}",
            "the token one character off": f"Bearer {near}",
            "an empty bearer": "Bearer ",
            "`Bearer` alone": "Bearer",
            "`Bearer` glued to the token": f"Bearer{real}",
            "the token under another scheme": f"Token {real}",
            "the token with a suffix": f"Bearer {real}x",
            "the token twice": f"Bearer {real} {real}",
        }
        endpoints = [
            ("GET", "/v1/tasks", None),
            ("POST", "/v1/jobs", submission("demo.add", {"a": 1, "b": 2})),
            ("GET", f"/v1/jobs/{uuid.uuid4()}", None),
            ("GET", "/v1/demo/heartbeat", None),
        ]
        anonymous = requests.Session()
        results = []
        for label, header in offers.items():
            for method, path, body in endpoints:
                headers = {"Content-Type": "application/json"}
                if header is not None:
                    headers["Authorization"] = header
                response = anonymous.request(
                    method, client.base_url + path, data=body, headers=headers, timeout=10
                )
                check_problem(response, 401)
                assert response.headers.get("WWW-Authenticate") == "Bearer", response.headers
            results.append(f"  401 x {len(endpoints)}: {label}")
        # The harness accepts the real token, so a 401 above is the token's fault.
        assert client.http_get("/v1/tasks").status_code == 200
        assert int(redis_cli(redis, "LLEN", "celery")) == 0  # no rejected POST was queued

        logs = container_logs(api)
        searched = {"real token": real, "wrong token": wrong, "token one character off": near}
        leaks = {name: logs.count(value) for name, value in searched.items()}
        unauthorized = sum(
            1 for line in json_logs(api) if line.get("event") == "request" and line["status"] == 401
        )
        print("\n" + "\n".join(results))
        print(
            f"API log: {len(logs.splitlines())} lines, {unauthorized} access lines with 401; "
            f"occurrences of each token: {leaks}"
        )
        assert unauthorized == len(offers) * len(endpoints)
        assert leaks == dict.fromkeys(searched, 0)


# -- the broker as a trust boundary --------------------------------------------------------------

# Messages the API would never queue: (task, positional args, keyword args, expected error type).
BY_HAND: list[tuple[str, tuple[Any, ...], dict[str, Any], str]] = [
    ("celery.chord_unlock", (), {"group_id": "x", "callback": {}}, "NotRegistered"),
    ("celery.chain", (), {}, "NotRegistered"),
    ("os.system", ("true",), {}, "NotRegistered"),
    ("demo.add", (), {"a": "1; drop", "b": 2}, "InvalidArguments"),
    ("demo.add", (1, 2), {}, "InvalidArguments"),
    ("demo.add", (), {"a": 1, "b": 2, "shell": "rm -rf /"}, "InvalidArguments"),
    ("demo.sleep", (), {"seconds": 3600}, "InvalidArguments"),
]


@pytest.mark.timeout(300)
def test_messages_queued_by_hand_run_only_declared_tasks_with_declared_arguments(
    courier_image: str,
) -> None:
    """A message put on the queue by hand (anyone with the broker's address and password) runs
    only a public or periodic task, only with arguments its declaration allows; the others are
    logged, acknowledged (never redelivered), and their job says why."""
    with Stack(courier_image) as system:
        redis = system.add_redis()
        worker = system.courier("worker", redis_urls())
        worker.wait_until_ready()
        broker = f"redis://127.0.0.1:{redis.get_exposed_port(6379)}/0"
        backend = Celery("reader", backend=broker.replace("/0", "/1"), set_as_current=False)

        expected = {}
        for task, args, kwargs, error in BY_HAND:
            task_id = str(uuid.uuid4())
            expected[task_id] = (task, error)
            publish_by_hand(broker, task_id, "json", args, task=task, kwargs=kwargs)
        control = str(uuid.uuid4())
        publish_by_hand(broker, control, "json", (), kwargs={"a": 40, "b": 2})

        def meta(task_id: str) -> dict[str, Any]:
            found: dict[str, Any] = backend.backend.get_task_meta(task_id)
            return found

        wait_until(
            lambda: all(meta(t)["status"] == "FAILURE" for t in expected)
            and meta(control)["status"] == "SUCCESS",
            60,
            what="every hand-made message refused and the control run",
        )
        outcomes = {t: type(meta(t)["result"]).__name__ for t in expected}
        print("\nmessages queued by hand:")
        for task_id, (task, _) in expected.items():
            detail = str(meta(task_id)["result"])[:60]
            print(f"  {task!r}: FAILURE {outcomes[task_id]} ({detail})")
        assert outcomes == {t: error for t, (_, error) in expected.items()}
        assert meta(control)["result"] == 42
        time.sleep(3)  # a refused message put back would be taken again meanwhile
        assert redis_cli(redis, "LLEN", "celery") == "0"
        assert redis_cli(redis, "HLEN", "unacked") == "0"
        logged = container_logs(worker)
        assert logged.count("Received unregistered task") == 3
        ran = [line for line in json_logs(worker) if line.get("event") in ("added", "sleeping")]
        assert [line.get("task_id") for line in ran] == [control]
        backend.close()
