"""The HTTP API: a Falcon app built by `create_app`, served by gunicorn."""
