"""Fixtures for the unit tests: settings in a temporary data directory, a Falcon test client on
the real embedded broker (kombu's filesystem transport, Celery's file result backend), and a
real Redis URL that nobody listens on."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from falcon import testing

from courier import logs
from courier.api.app import create_app
from courier.demo.settings import DemoSettings
from courier.plugin import Plugin, load_plugin
from courier.queue.app import CourierCelery, create_celery
from courier.settings import DEFAULT_PLUGIN, Settings, load_settings, setting_variables
from tests.conftest import free_port

# 32 characters; never appears in any fixture data other than as the configured token.
TOKEN = "unit-token-Qw7Zp2Lk9Xv4Rt6Yb3Nm8"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Every variable courier and the demo read, from their declarations.
COURIER_VARIABLES = setting_variables(Settings, DemoSettings)

assert len(TOKEN) == 32


def dead_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory; the working directory too, so no developer `.env` is read."""
    monkeypatch.chdir(tmp_path)
    for name in COURIER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


SettingsFactory = Callable[..., Settings]


def demo_plugin(**environ: str) -> Plugin:
    """The default plugin (the demo), with its settings read from `environ`."""
    return load_plugin(DEFAULT_PLUGIN, environ)


def celery_for(settings: Settings, **environ: str) -> CourierCelery:
    return create_celery(settings, demo_plugin(**environ))


@pytest.fixture
def make_settings(data_dir: Path) -> SettingsFactory:
    """Settings from an environment dict: DATA_DIR, API_TOKENS and LOG_FLUSH_INTERVAL=0 (each
    line written at once, for the tests that read them) preset, overridable."""

    def make(**environ: str) -> Settings:
        preset = {"DATA_DIR": str(data_dir), "API_TOKENS": TOKEN, "LOG_FLUSH_INTERVAL": "0"}
        return load_settings({**preset, **environ})

    return make


ClientFactory = Callable[..., testing.TestClient]


@pytest.fixture
def make_client(make_settings: SettingsFactory) -> Iterator[ClientFactory]:
    """A test client on the real app, for settings built from an environment dict."""
    apps: list[CourierCelery] = []

    def make(**environ: str) -> testing.TestClient:
        settings = make_settings(**environ)
        plugin = demo_plugin(**environ)
        celery = create_celery(settings, plugin)
        apps.append(celery)
        return testing.TestClient(create_app(settings, celery, plugin))

    yield make
    for celery in apps:
        celery.close()


@pytest.fixture
def embedded(make_settings: SettingsFactory) -> Iterator[tuple[Settings, CourierCelery]]:
    settings = make_settings()
    celery = celery_for(settings)
    yield settings, celery
    celery.close()


@pytest.fixture
def client(embedded: tuple[Settings, CourierCelery]) -> testing.TestClient:
    """The API in the embedded mode: POST /v1/jobs writes a real message file."""
    settings, celery = embedded
    return testing.TestClient(create_app(settings, celery, celery.plugin))


@pytest.fixture
def dead_client(make_client: ClientFactory) -> testing.TestClient:
    """The API against a Redis URL whose port refuses connections."""
    return make_client(BROKER_URL=dead_redis_url(), BROKER_CONNECT_TIMEOUT="0.5")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo `configure_logging`: its handler writes to a stream that capsys closes, and its
    batching would hold the next tests' lines."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logs.flush()
    logs._output.interval = 0.0  # line by line again, as for a process that runs no role
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def message_files(settings: Settings) -> list[Path]:
    """Messages the filesystem transport wrote for a worker to consume."""
    return sorted((settings.data_dir / "broker").glob("*.msg"))


def job_records(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / "results").glob("courier-job-*"))


def clean_environ(data_dir: Path, **overrides: str) -> dict[str, str]:
    """This process's environment without any courier variable, plus DATA_DIR and overrides."""
    env = {k: v for k, v in os.environ.items() if k not in COURIER_VARIABLES}
    env["DATA_DIR"] = str(data_dir)
    env["HOST"] = "127.0.0.1"  # an API started by a test listens on the loopback interface only
    env["METRICS_PORT"] = "0"  # no exporter unless the test asks for one (on a free port)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env
