"""The HTTP API on the real embedded broker (filesystem transport, file result backend), and on
a Redis URL that refuses connections."""

from __future__ import annotations

import base64
import contextlib
import json
import string
import time
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from falcon import testing

from courier import buildinfo
from courier.buildinfo import build_info
from courier.demo.tasks import HEARTBEAT_KEY, TransientError
from courier.logs import configure_logging
from courier.settings import Settings
from tests.unit.conftest import (
    AUTH,
    TOKEN,
    ClientFactory,
    SettingsFactory,
    job_records,
    message_files,
)

JSON = {"Content-Type": "application/json"}
PUBLIC_TASKS = {"demo.add", "demo.sleep", "demo.flaky", "demo.fail"}
ADD = {"task": "demo.add", "args": {"a": 1, "b": 2}}
VERSION_TEMPLATE = Path(__file__).resolve().parents[2] / "VERSION.tmpl"


def assert_problem(result: testing.Result, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with the given status; returns its body."""
    assert result.status_code == status, result.text
    assert result.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(result.text)
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str)
        assert body[member]
    return body


def post(client: testing.TestClient, body: str | bytes, **headers: str) -> testing.Result:
    return client.simulate_post("/v1/jobs", body=body, headers={**AUTH, **JSON, **headers})


def read_message(settings: Settings) -> dict[str, Any]:
    (path,) = message_files(settings)
    message: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return message


# --- open endpoints -----------------------------------------------------------------------------


def test_healthz(client: testing.TestClient) -> None:
    result = client.simulate_get("/healthz")
    assert result.status_code == 200
    assert result.json == {"status": "ok"}


@pytest.fixture
def package_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty folder that `courier.buildinfo` takes for the installed package's folder."""
    folder = tmp_path / "package"
    folder.mkdir()

    def files(package: str) -> Path:
        assert package == "courier"
        return folder

    monkeypatch.setattr(buildinfo, "resources", SimpleNamespace(files=files))
    build_info.cache_clear()
    yield folder
    build_info.cache_clear()


def render_build_info(folder: Path, values: dict[str, str]) -> None:
    """Write build_info.json as the image build does: VERSION.tmpl through string.Template."""
    template = string.Template(VERSION_TEMPLATE.read_text(encoding="utf-8"))
    (folder / "build_info.json").write_text(template.substitute(values), encoding="utf-8")


def test_version_reports_the_build_info_the_image_wrote(
    client: testing.TestClient, package_dir: Path
) -> None:
    render_build_info(
        package_dir,
        {
            "VERSION": "9.8.7-rc.1",
            "GIT_SHA": "0123456789abcdef0123456789abcdef01234567",
            "BUILD_DATE": "2031-02-03T04:05:06Z",
        },
    )
    result = client.simulate_get("/version")
    assert result.status_code == 200
    assert result.json == {
        "version": "9.8.7-rc.1",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "build_date": "2031-02-03T04:05:06Z",
    }


def test_version_reports_unknown_for_empty_build_values(
    client: testing.TestClient, package_dir: Path
) -> None:
    render_build_info(package_dir, {"VERSION": "1.2.3", "GIT_SHA": "", "BUILD_DATE": ""})
    result = client.simulate_get("/version")
    assert result.status_code == 200
    assert result.json == {"version": "1.2.3", "commit": "unknown", "build_date": "unknown"}


@pytest.mark.parametrize("content", [None, "not json {", "[]"], ids=["absent", "broken", "array"])
def test_version_without_a_usable_build_info_falls_back_to_the_installed_version(
    client: testing.TestClient, package_dir: Path, content: str | None
) -> None:
    if content is not None:
        (package_dir / "build_info.json").write_text(content, encoding="utf-8")
    installed = metadata.version("courier")
    assert installed != "unknown"
    result = client.simulate_get("/version")
    assert result.status_code == 200
    assert result.json == {"version": installed, "commit": "unknown", "build_date": "unknown"}


def test_readyz_in_the_embedded_mode(client: testing.TestClient) -> None:
    result = client.simulate_get("/readyz")
    assert result.status_code == 200
    assert result.json == {"status": "ready", "checks": {"broker": "ok", "result_backend": "ok"}}


def test_readyz_with_the_broker_down(dead_client: testing.TestClient) -> None:
    started = time.monotonic()
    result = dead_client.simulate_get("/readyz")

    body = assert_problem(result, 503)
    assert body["checks"]["broker"] == "unreachable"
    assert body["checks"]["result_backend"] == "unreachable"
    assert "broker" in body["detail"]
    assert result.headers["retry-after"] == "5"
    assert time.monotonic() - started < 10


def test_healthz_does_not_touch_the_broker(dead_client: testing.TestClient) -> None:
    assert dead_client.simulate_get("/healthz").status_code == 200


# --- submitting and reading jobs ----------------------------------------------------------------


def test_submit_writes_a_message_and_a_job_record(
    client: testing.TestClient, embedded: tuple[Settings, Celery]
) -> None:
    settings, _ = embedded
    assert message_files(settings) == []

    result = client.simulate_post(
        "/v1/jobs", json=ADD, headers={**AUTH, "X-Request-ID": "req-0123456789"}
    )

    assert result.status_code == 202, result.text
    job_id = result.json["id"]
    assert str(uuid.UUID(job_id)) == job_id
    assert result.json == {"id": job_id, "state": "PENDING"}
    assert result.headers["location"] == f"/v1/jobs/{job_id}"
    assert result.headers["x-request-id"] == "req-0123456789"

    message = read_message(settings)
    assert message["headers"]["task"] == "demo.add"
    assert message["headers"]["id"] == job_id
    assert message["headers"]["request_id"] == "req-0123456789"
    assert message["content-type"] == "application/json"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([], {"a": 1, "b": 2})
    assert [p.name for p in job_records(settings)] == [f"courier-job-{job_id}"]


def test_submitted_job_reads_back_pending(client: testing.TestClient) -> None:
    job_id = client.simulate_post("/v1/jobs", json=ADD, headers=AUTH).json["id"]

    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id.upper()}"):
        result = client.simulate_get(path, headers=AUTH)
        assert result.status_code == 200
        assert result.json == {"id": job_id, "task": "demo.add", "state": "PENDING"}


def test_job_result_and_error_come_from_the_result_backend(
    client: testing.TestClient, embedded: tuple[Settings, Celery]
) -> None:
    _, celery = embedded
    done = client.simulate_post("/v1/jobs", json=ADD, headers=AUTH).json["id"]
    failed = client.simulate_post("/v1/jobs", json=ADD, headers=AUTH).json["id"]
    public = client.simulate_post("/v1/jobs", json=ADD, headers=AUTH).json["id"]
    celery.backend.store_result(done, 3, "SUCCESS")
    celery.backend.store_result(failed, ZeroDivisionError("db at 10.0.0.7 said no"), "FAILURE")
    celery.backend.store_result(public, TransientError("try later"), "FAILURE")

    assert client.simulate_get(f"/v1/jobs/{done}", headers=AUTH).json == {
        "id": done,
        "task": "demo.add",
        "state": "SUCCESS",
        "result": 3,
    }
    assert client.simulate_get(f"/v1/jobs/{failed}", headers=AUTH).json == {
        "id": failed,
        "task": "demo.add",
        "state": "FAILURE",
        "error": {"type": "ZeroDivisionError"},  # a message may hold internals: not shown
    }
    assert client.simulate_get(f"/v1/jobs/{public}", headers=AUTH).json["error"] == {
        "type": "TransientError",
        "message": "try later",
    }


@pytest.mark.parametrize(
    "job_id",
    [str(uuid.uuid4()), "not-an-id", "0" * 36, "%7B" + uuid.uuid4().hex + "%7D", "a" * 300],
)
def test_unknown_job_is_404(client: testing.TestClient, job_id: str) -> None:
    assert_problem(client.simulate_get(f"/v1/jobs/{job_id}", headers=AUTH), 404)


def test_a_celery_result_without_our_record_is_404(
    client: testing.TestClient, embedded: tuple[Settings, Celery]
) -> None:
    _, celery = embedded
    job_id = str(uuid.uuid4())
    celery.backend.store_result(job_id, 3, "SUCCESS")
    assert_problem(client.simulate_get(f"/v1/jobs/{job_id}", headers=AUTH), 404)


def test_charset_parameter_is_accepted(client: testing.TestClient) -> None:
    result = post(client, json.dumps(ADD), **{"Content-Type": "application/json; charset=utf-8"})
    assert result.status_code == 202


@pytest.mark.parametrize("task", ["demo.sleep", "demo.flaky"])
def test_every_public_task_can_be_submitted(
    client: testing.TestClient, embedded: tuple[Settings, Celery], task: str
) -> None:
    args = {"demo.sleep": {"seconds": 0.5}, "demo.flaky": {"failures": 3}}[task]
    result = client.simulate_post("/v1/jobs", json={"task": task, "args": args}, headers=AUTH)
    assert result.status_code == 202
    assert read_message(embedded[0])["headers"]["task"] == task


# --- rejected submissions -----------------------------------------------------------------------

REJECTED_422: list[tuple[str, str]] = [
    ('{"task": "nope"}', "task"),
    ('{"task": "celery.backend_cleanup"}', "task"),
    ('{"task": "celery.chord_unlock", "args": {}}', "task"),
    ('{"task": "celery.ping"}', "task"),
    ('{"task": "demo.heartbeat"}', "task"),
    ('{"task": "DEMO.ADD", "args": {"a": 1, "b": 2}}', "task"),
    ('{"task": 5}', "task"),
    ('{"task": null}', "task"),
    ("{}", "task"),
    ('{"args": {"a": 1, "b": 2}}', "task"),
    ('{"task": "demo.add", "args": {"a": 1, "b": 2}, "queue": "other"}', "queue"),
    ('{"task": "demo.add", "args": {"a": 1, "b": 2}, "detail": "x"}', "detail"),
    ('{"task": "demo.add", "args": {"a": 1, "b": 2}, "eta": 1, "countdown": 2}', "countdown"),
    ('{"task": "demo.add", "args": [1, 2]}', "args"),
    ('{"task": "demo.add", "args": null}', "args"),
    ('{"task": "demo.add", "args": "a=1"}', "args"),
    ('{"task": "demo.add"}', "a"),
    ('{"task": "demo.add", "args": {"a": 1}}', "b"),
    ('{"task": "demo.add", "args": {"a": "1", "b": 2}}', "a"),
    ('{"task": "demo.add", "args": {"a": true, "b": 2}}', "a"),
    ('{"task": "demo.add", "args": {"a": null, "b": 2}}', "a"),
    ('{"task": "demo.add", "args": {"a": [1], "b": 2}}', "a"),
    ('{"task": "demo.add", "args": {"a": 1e16, "b": 2}}', "a"),
    ('{"task": "demo.add", "args": {"a": 1, "b": 100000000000000000000}}', "b"),
    ('{"task": "demo.add", "args": {"a": 1, "b": 2, "c": 3}}', "c"),
    ('{"task": "demo.add", "args": {"a": 1, "b": 2, "detail": 3}}', "detail"),
    ('{"task": "demo.sleep", "args": {"seconds": -1}}', "seconds"),
    ('{"task": "demo.sleep", "args": {"seconds": 1e9}}', "seconds"),
    ('{"task": "demo.sleep", "args": {"seconds": NaN}}', "seconds"),
    ('{"task": "demo.sleep", "args": {"seconds": Infinity}}', "seconds"),
    ('{"task": "demo.sleep", "args": {"seconds": -Infinity}}', "seconds"),
    ('{"task": "demo.flaky", "args": {"failures": 1.5}}', "failures"),
    ('{"task": "demo.flaky", "args": {"failures": 4}}', "failures"),
    ('{"task": "demo.flaky", "args": {"failures": false}}', "failures"),
    ("[]", "body"),
    ('["demo.add"]', "body"),
    ("null", "body"),
    ('"demo.add"', "body"),
    ("42", "body"),
]


@pytest.mark.parametrize(("body", "field"), REJECTED_422)
def test_invalid_submission_is_422_and_queues_nothing(
    client: testing.TestClient, embedded: tuple[Settings, Celery], body: str, field: str
) -> None:
    result = post(client, body)

    problem = assert_problem(result, 422)
    assert field in problem["errors"]
    assert all(isinstance(text, str) for text in problem["errors"].values())
    assert message_files(embedded[0]) == []
    assert job_records(embedded[0]) == []


def test_many_unknown_keys_are_reported_briefly(client: testing.TestClient) -> None:
    body = {**ADD, **{f"{'k' * 100}{i:03}": i for i in range(50)}}
    problem = assert_problem(post(client, json.dumps(body)), 422)
    assert 0 < len(problem["errors"]) <= 10
    assert all(len(name) <= 64 for name in problem["errors"])


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"",
        b"{'task': 'demo.add'}",
        b'{"task": "demo.add", "args": {"a": 1, "b": 2}',
        b"\xff\xfe\x00{",
        b'{"task": "demo.add", "args": {"a": 1, "b": ' + b"1" * 5000 + b"}}",
        b"[" * 5000 + b"]" * 5000,
        b'{"task": "demo.add", "args": {"a": ' + b"[" * 5000 + b"]" * 5000 + b', "b": 2}}',
        b"[" * 100000,
        b"{" * 100000,
    ],
    ids=[
        "truncated",
        "empty",
        "single-quotes",
        "unclosed",
        "not-utf8",
        "huge-integer",
        "nested-5000",
        "nested-in-args",
        "open-100000",
        "braces-100000",
    ],
)
def test_malformed_json_is_400_never_500(make_client: ClientFactory, body: bytes) -> None:
    client = make_client(MAX_BODY_BYTES="250000")
    problem = assert_problem(post(client, body), 400)
    assert problem["title"] == "Malformed JSON"


def test_body_over_the_limit_is_413(
    make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    client = make_client(MAX_BODY_BYTES="1024")
    settings = make_settings()
    body = json.dumps({**ADD, "padding": "x" * 1024})

    problem = assert_problem(post(client, body), 413)

    assert "1024" in problem["detail"]
    assert message_files(settings) == []


def test_body_at_the_limit_is_read(make_client: ClientFactory) -> None:
    body = json.dumps(ADD).encode()
    body += b" " * (128 - len(body))
    assert post(make_client(MAX_BODY_BYTES="128"), body).status_code == 202
    assert_problem(post(make_client(MAX_BODY_BYTES="127"), body), 413)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_non_json_body_is_415(
    client: testing.TestClient, embedded: tuple[Settings, Celery], content_type: str
) -> None:
    headers = {**AUTH, "Content-Type": content_type} if content_type else AUTH
    result = client.simulate_post("/v1/jobs", body=json.dumps(ADD), headers=headers)
    assert_problem(result, 415)
    assert message_files(embedded[0]) == []


def test_submit_with_the_broker_down_is_503(dead_client: testing.TestClient) -> None:
    started = time.monotonic()
    result = dead_client.simulate_post("/v1/jobs", json=ADD, headers=AUTH)

    problem = assert_problem(result, 503)
    assert result.headers["retry-after"] == "5"
    assert "unavailable" in problem["detail"]
    assert time.monotonic() - started < 10


def test_reading_a_job_with_the_backend_down_is_503(dead_client: testing.TestClient) -> None:
    result = dead_client.simulate_get(f"/v1/jobs/{uuid.uuid4()}", headers=AUTH)
    assert_problem(result, 503)
    assert result.headers["retry-after"] == "5"


# --- authentication -----------------------------------------------------------------------------

WRONG_AUTHORIZATION = [
    None,
    "Bearer wrong-token-wrong-token-wrong-tok",
    f"Bearer {TOKEN[:-1]}{'x' if TOKEN[-1] != 'x' else 'y'}",
    f"Bearer {'X' if TOKEN[0] != 'X' else 'Y'}{TOKEN[1:]}",
    f"Bearer {TOKEN[:-1]}",
    f"Bearer {TOKEN}x",
    "Bearer ",
    "Bearer",
    f"Bearer{TOKEN}",
    "Basic xxx",
    f"Basic {TOKEN}",
    f"Token {TOKEN}",
    TOKEN,
    "",
]


@pytest.mark.parametrize("authorization", WRONG_AUTHORIZATION)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/tasks"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/{id}"), ("DELETE", "/v1/jobs")],
)
def test_wrong_or_missing_token_is_401(
    client: testing.TestClient,
    embedded: tuple[Settings, Celery],
    authorization: str | None,
    method: str,
    path: str,
) -> None:
    headers = {**JSON} if authorization is None else {**JSON, "Authorization": authorization}
    path = path.replace("{id}", str(uuid.uuid4()))

    result = client.simulate_request(method, path, body=json.dumps(ADD), headers=headers)

    problem = assert_problem(result, 401)
    assert problem["title"] == "Unauthorized"
    assert result.headers["www-authenticate"] == "Bearer"
    assert message_files(embedded[0]) == []


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"Bearer  {TOKEN}"]
)
def test_right_token_is_accepted(client: testing.TestClient, authorization: str) -> None:
    result = client.simulate_get("/v1/tasks", headers={"Authorization": authorization})
    assert result.status_code == 200


def test_every_configured_token_is_accepted(make_client: ClientFactory) -> None:
    tokens = ["rotating-token-old-000000", "rotating-token-new-111111"]
    client = make_client(API_TOKENS=",".join(tokens))
    for token in tokens:
        result = client.simulate_get("/v1/tasks", headers={"Authorization": f"Bearer {token}"})
        assert result.status_code == 200
    assert_problem(client.simulate_get("/v1/tasks", headers=AUTH), 401)


def test_without_configured_tokens_nothing_is_accepted(make_client: ClientFactory) -> None:
    client = make_client(API_TOKENS="")
    for authorization in ("Bearer ", "Bearer", f"Bearer {TOKEN}"):
        result = client.simulate_get("/v1/tasks", headers={"Authorization": authorization})
        assert_problem(result, 401)
    assert client.simulate_get("/healthz").status_code == 200


def test_offered_tokens_are_never_logged(
    client: testing.TestClient,
    make_settings: SettingsFactory,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    restore_logging: None,
) -> None:
    configure_logging(make_settings())
    offered = [
        TOKEN,
        "offered-wrong-token-1234567890",
        f"{TOKEN[:-1]}!",
    ]
    for token in offered:
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": f"auth-test-{token[-3:]}"}
        client.simulate_post("/v1/jobs", json=ADD, headers=headers)
        client.simulate_get("/v1/tasks", headers=headers)
        client.simulate_get("/readyz", headers=headers)
    client.simulate_get("/v1/jobs/x", headers={"Authorization": f"Basic {TOKEN}"})

    out, err = capsys.readouterr()
    logged = out + err + caplog.text
    assert out.count('"path": "/v1/jobs"') == 3  # the access log did capture these requests
    assert '"status": 401' in out
    for token in offered:
        assert token not in logged
    assert TOKEN[:16] not in logged


# --- methods, routes, request ids ---------------------------------------------------------------


def test_delete_jobs_is_405(client: testing.TestClient) -> None:
    result = client.simulate_delete("/v1/jobs", headers=AUTH)
    assert_problem(result, 405)
    assert "POST" in result.headers["allow"]


def test_put_healthz_is_405(client: testing.TestClient) -> None:
    assert_problem(client.simulate_put("/healthz"), 405)


@pytest.mark.parametrize("path", ["/nope", "/v1", "/v1/jobs/a/b", "/v2/jobs"])
def test_unknown_route_is_404(client: testing.TestClient, path: str) -> None:
    body = assert_problem(client.simulate_get(path, headers=AUTH), 404)
    assert body["instance"] == path


def test_trailing_slash_is_the_same_route(client: testing.TestClient) -> None:
    assert client.simulate_get("/healthz/").status_code == 200


def test_valid_request_id_is_echoed(client: testing.TestClient) -> None:
    for request_id in ("req-0123456789", "a" * 128, "Trace.id:01-abc_DEF"):
        result = client.simulate_get("/healthz", headers={"X-Request-ID": request_id})
        assert result.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["bad id with spaces", "a" * 300, "a" * 129, "short", "-leading-dash", "", "é" * 10],
)
def test_invalid_request_id_is_replaced(client: testing.TestClient, request_id: str) -> None:
    result = client.simulate_get("/healthz", headers={"X-Request-ID": request_id})
    generated = result.headers["x-request-id"]
    assert generated != request_id
    assert uuid.UUID(hex=generated).hex == generated


def test_request_id_is_set_on_problems_too(client: testing.TestClient) -> None:
    result = client.simulate_get("/v1/tasks", headers={"X-Request-ID": "problem-req-1"})
    assert result.status_code == 401
    assert result.headers["x-request-id"] == "problem-req-1"


def test_each_request_gets_its_own_generated_id(client: testing.TestClient) -> None:
    ids = {client.simulate_get("/healthz").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


# --- catalog, OpenAPI, demo ---------------------------------------------------------------------


def test_task_catalog_lists_public_tasks_with_schemas(client: testing.TestClient) -> None:
    result = client.simulate_get("/v1/tasks", headers=AUTH)

    assert result.status_code == 200
    tasks = {task["name"]: task for task in result.json["tasks"]}
    assert set(tasks) == PUBLIC_TASKS
    sleep = tasks["demo.sleep"]["parameters"]
    assert sleep["properties"]["seconds"]["type"] == "number"
    assert sleep["properties"]["seconds"]["minimum"] == 0
    assert sleep["properties"]["seconds"]["maximum"] == 60
    assert sleep["required"] == ["seconds"]
    assert sleep["additionalProperties"] is False
    assert tasks["demo.add"]["parameters"]["required"] == ["a", "b"]
    assert tasks["demo.flaky"]["parameters"]["properties"]["failures"]["type"] == "integer"
    assert all(task["description"] for task in tasks.values())


ROUTES = {
    "/healthz",
    "/readyz",
    "/version",
    "/v1/tasks",
    "/v1/jobs",
    "/v1/jobs/{job_id}",
    "/v1/demo/heartbeat",
    "/openapi.json",
}


def test_openapi_document(client: testing.TestClient) -> None:
    result = client.simulate_get("/openapi.json")

    assert result.status_code == 200
    document = result.json
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == build_info().version
    assert set(document["paths"]) == ROUTES
    request = document["paths"]["/v1/jobs"]["post"]["requestBody"]
    submissions = request["content"]["application/json"]["schema"]["oneOf"]
    assert {s["properties"]["task"]["const"] for s in submissions} == PUBLIC_TASKS
    responses = document["paths"]["/v1/jobs"]["post"]["responses"]
    assert {"202", "400", "401", "413", "415", "422", "503"} <= set(responses)


def test_openapi_security_matches_the_auth_middleware(client: testing.TestClient) -> None:
    """Operations documented as public answer without a token; every other one answers 401."""
    document = client.simulate_get("/openapi.json").json
    checked = 0
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            url = path.replace("{job_id}", str(uuid.uuid4()))
            result = client.simulate_request(method.upper(), url, body="{}", headers=JSON)
            if op.get("security") == []:
                assert result.status_code == 200, (method, path)
                assert "401" not in op["responses"]
            else:
                assert result.status_code == 401, (method, path)
                assert "401" in op["responses"]
            checked += 1
    assert checked == len(ROUTES)


def test_heartbeat_before_any_run(client: testing.TestClient) -> None:
    result = client.simulate_get("/v1/demo/heartbeat", headers=AUTH)
    assert result.status_code == 200
    assert result.json == {"last_run": None, "age_seconds": None, "interval_seconds": 60.0}


def test_heartbeat_reads_the_result_backend(
    client: testing.TestClient, embedded: tuple[Settings, Celery]
) -> None:
    _, celery = embedded
    ran_at = time.time() - 5
    celery.backend.set(HEARTBEAT_KEY, json.dumps({"last_run": ran_at}))

    body = client.simulate_get("/v1/demo/heartbeat", headers=AUTH).json

    assert body["last_run"] == ran_at
    assert 5 <= body["age_seconds"] < 60


def test_heartbeat_with_the_backend_down_is_503(dead_client: testing.TestClient) -> None:
    assert_problem(dead_client.simulate_get("/v1/demo/heartbeat", headers=AUTH), 503)


def test_prefer_wait_needs_a_redis_backend_and_is_ignored_without_one(
    client: testing.TestClient,
) -> None:
    """The embedded file backend publishes nothing to wait on: the preference is not applied."""
    started = time.monotonic()
    result = client.simulate_post("/v1/jobs", json=ADD, headers={**AUTH, "Prefer": "wait=5"})
    assert result.status_code == 202
    assert "preference-applied" not in result.headers
    read = client.simulate_get(result.headers["location"], headers={**AUTH, "Prefer": "wait=5"})
    assert read.json["state"] == "PENDING"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("wait=5", 5.0),
        ("WAIT = 2.5", 2.5),
        ("respond-async, wait=3", 3.0),
        ("handling=lenient; wait=1, return=minimal", 1.0),
        ("wait=600", 10.0),
        ("wait=abc", 0.0),
        ("wait=-1", 0.0),
        ("nowait=5", 0.0),
        ("", 0.0),
    ],
)
def test_prefer_wait_is_read_as_rfc_7240_writes_it(header: str, seconds: float) -> None:
    from falcon.testing import create_req

    from courier.api.jobs import Waiting

    with Waiting(limit=10.0, threads=4).preferred(create_req(headers={"Prefer": header})) as wait:
        assert wait == seconds


def test_one_thread_is_always_left_for_requests_that_do_not_wait() -> None:
    """With 4 threads, 3 requests may wait at once; the 4th is answered at once, and so is
    every request of a process with one thread."""
    from falcon.testing import create_req

    from courier.api.jobs import Waiting

    def prefer() -> Any:
        return create_req(headers={"Prefer": "wait=5"})

    waiting = Waiting(limit=10.0, threads=4)
    with contextlib.ExitStack() as held:
        waits = [held.enter_context(waiting.preferred(prefer())) for _ in range(4)]
    assert waits == [5.0, 5.0, 5.0, 0.0]
    with waiting.preferred(prefer()) as wait:
        assert wait == 5.0  # the slots came back
    with Waiting(limit=10.0, threads=1).preferred(prefer()) as wait:
        assert wait == 0.0
