"""The HTTP API: a Falcon app (`create_app`) served by gunicorn (`server`). Keep it; business
resources plug in through `courier.plugin`."""
