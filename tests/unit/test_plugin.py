"""Plugging business code in by the `PLUGIN` setting alone: a second package from tests/plugins
(one task, one route, one periodic job) replaces the demo, and bad plugins are refused."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from falcon import testing

from courier.api.app import create_app
from courier.boot import boot
from courier.plugin import Plugin, load_plugin
from courier.queue.app import create_celery
from courier.settings import ConfigError
from tests.conftest import ROOT
from tests.unit.conftest import AUTH, TOKEN, message_files

PLUGINS = ROOT / "tests" / "plugins"


@pytest.fixture
def plugins_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(PLUGINS))
    yield
    for name in [m for m in sys.modules if m == "tinyshop" or m.startswith("tinyshop.")]:
        del sys.modules[name]


@pytest.mark.usefixtures("plugins_on_path")
def test_a_second_business_package_replaces_the_demo(data_dir: Path) -> None:
    settings, plugin = boot(
        {"DATA_DIR": str(data_dir), "API_TOKENS": TOKEN, "PLUGIN": "tinyshop:plugin"}
    )
    celery = create_celery(settings, plugin)
    client = testing.TestClient(create_app(settings, celery, plugin))

    catalog = client.simulate_get("/v1/tasks", headers=AUTH).json["tasks"]
    assert [task["name"] for task in catalog] == ["tinyshop.price", "tinyshop.average"]
    assert catalog[0]["parameters"]["required"] == ["quantity", "unit_cents"]
    paths = client.simulate_get("/openapi.json").json["paths"]
    assert "/v1/tinyshop/restocks" in paths
    assert "/v1/demo/heartbeat" not in paths
    assert client.simulate_get("/v1/tinyshop/restocks", headers=AUTH).json == {"restocks": 0}

    bad = client.simulate_post(
        "/v1/jobs", json={"task": "tinyshop.price", "args": {"quantity": 0}}, headers=AUTH
    )
    assert bad.status_code == 422
    assert bad.json["errors"] == {"quantity": "must be at least 1", "unit_cents": "is required"}
    demo = client.simulate_post(
        "/v1/jobs", json={"task": "demo.add", "args": {"a": 1, "b": 2}}, headers=AUTH
    )
    assert demo.status_code == 422
    good = client.simulate_post(
        "/v1/jobs",
        json={"task": "tinyshop.price", "args": {"quantity": 3, "unit_cents": 250}},
        headers=AUTH,
    )
    assert good.status_code == 202, good.text
    assert len(message_files(settings)) == 1

    celery.finalize()
    assert {"tinyshop.price", "tinyshop.restock"} <= set(celery.tasks)
    assert not any(name.startswith("demo.") for name in celery.tasks)
    assert celery.conf.beat_schedule == {
        "tinyshop.restock": {"task": "tinyshop.restock", "schedule": 1.0}
    }
    assert celery.tasks["tinyshop.price"](quantity=3, unit_cents=250, coupon="TENOFF") == 675
    celery.close()


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("no_such_package", "no module named 'no_such_package'"),
        ("tinyshop:nothing", "tinyshop has no attribute 'nothing'"),
        ("tinyshop.tasks:price", "failed"),  # a function of the environment that is no plugin
        ("tinyshop.tasks:RESTOCKS_KEY", "is not a courier Plugin"),
    ],
)
@pytest.mark.usefixtures("plugins_on_path")
def test_a_bad_plugin_is_refused_with_one_line(reference: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_plugin(reference, {})
    assert caught.value.variable == "PLUGIN"
    assert reason in caught.value.problem
    assert "\n" not in str(caught.value)


def test_a_plugin_whose_periodic_job_names_no_task_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = Plugin(
        name="broken",
        task_modules=("courier.demo.tasks",),
        periodic_jobs={"typo": {"task": "demo.heartbaet", "schedule": 1.0}},
    )
    monkeypatch.setattr(sys.modules["courier.plugin"], "broken_plugin", broken, raising=False)
    with pytest.raises(ConfigError, match="periodic job 'typo' names no task"):
        load_plugin("courier.plugin:broken_plugin", {})


def test_a_task_module_that_fails_to_import_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "badshop.py").write_text(
        "from courier.plugin import Plugin\n"
        "plugin = Plugin(name='bad', task_modules=('badshop_tasks',))\n"
    )
    (tmp_path / "badshop_tasks.py").write_text("raise RuntimeError('broken\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        load_plugin("badshop:plugin", {})
    assert caught.value.problem == "a task module of badshop:plugin failed: RuntimeError: broken"


def test_a_plugin_error_never_shows_a_secret_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin gets the whole environment; an error it raises may quote a URL or a token from
    it. The one line courier prints shows neither a password nor a token, its own settings'
    errors included."""
    (tmp_path / "leakyshop.py").write_text(
        "from courier.settings import ConfigError\n"
        "def create_plugin(environ):\n"
        "    if environ.get('SHOP_STRICT'):\n"
        "        raise ConfigError('SHOP_API_KEY', f\"{environ['SHOP_API_KEY']} is revoked\")\n"
        "    raise RuntimeError(\n"
        "        f\"cannot reach {environ['SHOP_DATABASE_URL']} as {environ['API_TOKENS']}\"\n"
        "    )\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    environ = {
        "SHOP_DATABASE_URL": "postgresql://shop:pw%2F4711@db:5432/shop",
        "API_TOKENS": "tok-aaaaaaaaaaaaaaaa,tok-bbbbbbbbbbbbbbbb",
        "SHOP_API_KEY": "k-123456",
    }
    with pytest.raises(ConfigError) as caught:
        load_plugin("leakyshop:create_plugin", environ)
    message = str(caught.value)
    with pytest.raises(ConfigError) as own:
        load_plugin("leakyshop:create_plugin", {**environ, "SHOP_STRICT": "1"})
    print(f"\n{message}\n{own.value}")
    expected = "cannot reach postgresql://shop:***@db:5432/shop as ***"
    assert message == f"PLUGIN: leakyshop:create_plugin failed: RuntimeError: {expected}"
    assert str(own.value) == "SHOP_API_KEY: *** is revoked"
    for secret in ("pw%2F4711", "pw/4711", "tok-aaaaaaaaaaaaaaaa", "tok-bbbbbbbbbbbbbbbb"):
        assert secret not in message
