"""The bare WSGI baseline: what gunicorn serves when there is no kit at all."""

BODY = b'{"status": "ok"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", HEADERS)  # type: ignore[operator]
    return [BODY]
