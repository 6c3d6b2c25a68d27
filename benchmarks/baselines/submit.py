"""The bare submission baseline: a WSGI app that queues the posted job with Celery's own
`send_task`, and nothing else (no validation, record, auth, logging or metrics)."""

import json
import os

from celery import Celery

celery = Celery("bare", broker=os.environ["BROKER_URL"], backend=os.environ["RESULT_BACKEND"])
HEADERS = [("Content-Type", "application/json")]


def app(environ: dict[str, object], start_response: object) -> list[bytes]:
    if environ["REQUEST_METHOD"] != "POST":  # the benchmark's readiness check
        start_response("200 OK", HEADERS)  # type: ignore[operator]
        return [b'{"status": "ok"}']
    length = int(str(environ.get("CONTENT_LENGTH") or 0))
    body = json.loads(environ["wsgi.input"].read(length))  # type: ignore[attr-defined]
    result = celery.send_task(body["task"], kwargs=body["args"])
    start_response("202 Accepted", HEADERS)  # type: ignore[operator]
    return [json.dumps({"id": result.id, "state": "PENDING"}).encode()]
