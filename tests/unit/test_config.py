"""Settings: defaults, validation of every variable, secrets kept out of messages, `.env`."""

from __future__ import annotations

from pathlib import Path

import pytest

from courier.demo.settings import DemoSettings
from courier.settings import DEFAULT_PLUGIN, ConfigError, environment, load, load_settings
from tests.unit.conftest import COURIER_VARIABLES

REDIS = "redis://redis:6379/0"


def refused(data_dir: Path, **environ: str) -> ConfigError:
    """The error that reading courier's and the demo's settings from `environ` raises."""
    env = {"DATA_DIR": str(data_dir), **environ}

    def read_both() -> None:
        load_settings(env)
        load(DemoSettings, environment(env))

    with pytest.raises(ConfigError) as caught:
        read_both()
    return caught.value


def test_defaults(data_dir: Path) -> None:
    settings = load_settings({"DATA_DIR": str(data_dir)})

    assert settings.mode == "all"
    assert settings.plugin == DEFAULT_PLUGIN == "courier.demo:create_plugin"
    assert settings.host == "0.0.0.0"  # noqa: S104 - every interface of the container
    assert settings.port == 5001
    assert settings.metrics_port == 9808
    assert settings.task_events is False
    assert settings.broker_url == "filesystem://"
    assert settings.embedded
    assert settings.result_backend == (data_dir / "results").resolve().as_uri()
    assert settings.result_backend.startswith("file:///")
    assert settings.api_tokens == ()
    assert settings.log_level == "INFO"
    assert settings.log_format == "json"
    assert settings.log_flush_interval == 0.1
    assert settings.web_concurrency == 2
    assert settings.worker_concurrency == 2
    assert settings.data_dir == data_dir
    assert settings.max_body_bytes == 65536
    assert settings.prefer_wait_max == 10.0
    assert settings.graceful_timeout == 30
    assert settings.task_time_limit == 300
    assert settings.task_soft_time_limit == 270
    assert settings.result_expires == 86400
    assert settings.visibility_timeout == 3600
    assert settings.broker_connect_timeout == 3.0
    assert settings.broker_timeout == 3.0
    assert settings.beat_lock_url == ""
    assert settings.beat_lock_timeout == 30
    assert load(DemoSettings, {}).heartbeat_interval == 60.0


def test_data_dir_default_is_the_image_tmpfs(data_dir: Path) -> None:
    assert load_settings({}).data_dir == Path("/tmp/courier")


def test_every_variable_is_read(data_dir: Path) -> None:
    environ = {
        "MODE": "worker",
        "PLUGIN": "tinyshop:plugin",
        "HOST": "::1",
        "PORT": "8080",
        "METRICS_PORT": "9100",
        "TASK_EVENTS": "yes",
        "BROKER_URL": "amqp://guest:guest@rabbit:5672//",
        "RESULT_BACKEND": "redis://redis:6379/1",
        "API_TOKENS": " first-token-0123456789 , second-token-0123456789 ",
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "CONSOLE",
        "LOG_FLUSH_INTERVAL": "0",
        "WEB_CONCURRENCY": "4",
        "WORKER_CONCURRENCY": "8",
        "DATA_DIR": str(data_dir / "elsewhere"),
        "MAX_BODY_BYTES": "1024",
        "PREFER_WAIT_MAX": "2.5",
        "GRACEFUL_TIMEOUT": "10",
        "REQUEST_HEADER_TIMEOUT": "4.5",
        "REQUEST_BODY_TIMEOUT": "12",
        "KEEPALIVE_TIMEOUT": "0",
        "WEB_THREADS": "8",
        "TASK_TIME_LIMIT": "100",
        "TASK_SOFT_TIME_LIMIT": "90",
        "RESULT_EXPIRES": "600",
        "VISIBILITY_TIMEOUT": "120",
        "BROKER_CONNECT_TIMEOUT": "1.5",
        "BROKER_TIMEOUT": "2.5",
        "BEAT_LOCK_URL": "redis://locks:6379/2",
        "BEAT_LOCK_TIMEOUT": "9",
        "HEARTBEAT_INTERVAL": "2.5",
    }
    assert set(environ) == COURIER_VARIABLES

    settings = load_settings(environ)

    assert settings.mode == "worker"
    assert settings.plugin == "tinyshop:plugin"
    assert settings.host == "::1"
    assert settings.port == 8080
    assert settings.metrics_port == 9100
    assert settings.task_events is True
    assert settings.broker_url == "amqp://guest:guest@rabbit:5672//"
    assert not settings.embedded
    assert settings.result_backend == "redis://redis:6379/1"
    assert settings.api_tokens == ("first-token-0123456789", "second-token-0123456789")
    assert settings.log_level == "DEBUG"
    assert settings.log_format == "console"
    assert settings.log_flush_interval == 0
    assert settings.web_concurrency == 4
    assert settings.worker_concurrency == 8
    assert settings.data_dir == data_dir / "elsewhere"
    assert settings.max_body_bytes == 1024
    assert settings.prefer_wait_max == 2.5
    assert settings.graceful_timeout == 10
    assert settings.request_header_timeout == 4.5
    assert settings.request_body_timeout == 12
    assert settings.keepalive_timeout == 0
    assert settings.web_threads == 8
    assert settings.task_time_limit == 100
    assert settings.task_soft_time_limit == 90
    assert settings.result_expires == 600
    assert settings.visibility_timeout == 120
    assert settings.broker_connect_timeout == 1.5
    assert settings.broker_timeout == 2.5
    assert settings.beat_lock_url == "redis://locks:6379/2"
    assert settings.beat_lock_timeout == 9
    assert load(DemoSettings, environ).heartbeat_interval == 2.5


def test_blank_values_mean_the_default(data_dir: Path) -> None:
    settings = load_settings(
        {"DATA_DIR": str(data_dir), "PORT": "  ", "MODE": "", "LOG_LEVEL": " ", "API_TOKENS": ","}
    )
    assert (settings.port, settings.mode, settings.log_level) == (5001, "all", "INFO")
    assert settings.api_tokens == ()


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"MODE": "bogus"}, "MODE"),
        ({"PORT": "0"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "-1"}, "PORT"),
        ({"PORT": "80.5"}, "PORT"),
        ({"BROKER_URL": "ftp://broker:21"}, "BROKER_URL"),
        ({"BROKER_URL": "redis://redis:notaport/0"}, "BROKER_URL"),
        ({"RESULT_BACKEND": "amqp://rabbit//"}, "RESULT_BACKEND"),
        ({"RESULT_BACKEND": "mongodb://db/results"}, "RESULT_BACKEND"),
        ({"BEAT_LOCK_URL": "amqp://rabbit//"}, "BEAT_LOCK_URL"),
        ({"BEAT_LOCK_URL": "file:///tmp/lock"}, "BEAT_LOCK_URL"),
        ({"API_TOKENS": "short"}, "API_TOKENS"),
        ({"API_TOKENS": "has a space in the middle"}, "API_TOKENS"),
        ({"API_TOKENS": "\u00e9" * 20}, "API_TOKENS"),
        ({"LOG_LEVEL": "bogus"}, "LOG_LEVEL"),
        ({"LOG_LEVEL": "TRACE"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
        ({"WEB_CONCURRENCY": "65"}, "WEB_CONCURRENCY"),
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"),
        ({"WORKER_CONCURRENCY": "257"}, "WORKER_CONCURRENCY"),
        ({"WORKER_CONCURRENCY": "two"}, "WORKER_CONCURRENCY"),
        ({"MAX_BODY_BYTES": "63"}, "MAX_BODY_BYTES"),
        ({"GRACEFUL_TIMEOUT": "0"}, "GRACEFUL_TIMEOUT"),
        ({"REQUEST_HEADER_TIMEOUT": "0.4"}, "REQUEST_HEADER_TIMEOUT"),
        ({"REQUEST_HEADER_TIMEOUT": "301"}, "REQUEST_HEADER_TIMEOUT"),
        ({"REQUEST_HEADER_TIMEOUT": "nan"}, "REQUEST_HEADER_TIMEOUT"),
        ({"REQUEST_BODY_TIMEOUT": "0.4"}, "REQUEST_BODY_TIMEOUT"),
        ({"REQUEST_BODY_TIMEOUT": "3601"}, "REQUEST_BODY_TIMEOUT"),
        ({"KEEPALIVE_TIMEOUT": "-1"}, "KEEPALIVE_TIMEOUT"),
        ({"KEEPALIVE_TIMEOUT": "3601"}, "KEEPALIVE_TIMEOUT"),
        ({"KEEPALIVE_TIMEOUT": "1.5"}, "KEEPALIVE_TIMEOUT"),
        ({"WEB_THREADS": "0"}, "WEB_THREADS"),
        ({"WEB_THREADS": "65"}, "WEB_THREADS"),
        ({"TASK_TIME_LIMIT": "0"}, "TASK_TIME_LIMIT"),
        ({"TASK_TIME_LIMIT": "60", "TASK_SOFT_TIME_LIMIT": "61"}, "TASK_SOFT_TIME_LIMIT"),
        ({"TASK_SOFT_TIME_LIMIT": "301"}, "TASK_SOFT_TIME_LIMIT"),
        ({"TASK_SOFT_TIME_LIMIT": "0"}, "TASK_SOFT_TIME_LIMIT"),
        ({"RESULT_EXPIRES": "59"}, "RESULT_EXPIRES"),
        ({"VISIBILITY_TIMEOUT": "0"}, "VISIBILITY_TIMEOUT"),
        ({"BROKER_CONNECT_TIMEOUT": "0.05"}, "BROKER_CONNECT_TIMEOUT"),
        ({"BROKER_CONNECT_TIMEOUT": "61"}, "BROKER_CONNECT_TIMEOUT"),
        ({"BROKER_CONNECT_TIMEOUT": "nan"}, "BROKER_CONNECT_TIMEOUT"),
        ({"BROKER_CONNECT_TIMEOUT": "soon"}, "BROKER_CONNECT_TIMEOUT"),
        ({"BROKER_TIMEOUT": "0"}, "BROKER_TIMEOUT"),
        ({"BROKER_TIMEOUT": "61"}, "BROKER_TIMEOUT"),
        ({"BEAT_LOCK_TIMEOUT": "2"}, "BEAT_LOCK_TIMEOUT"),
        ({"HEARTBEAT_INTERVAL": "0.4"}, "HEARTBEAT_INTERVAL"),
        ({"HEARTBEAT_INTERVAL": "inf"}, "HEARTBEAT_INTERVAL"),
        ({"HEARTBEAT_INTERVAL": "nan"}, "HEARTBEAT_INTERVAL"),
        # Every number has an upper bound: these crashed or were accepted before.
        ({"HEARTBEAT_INTERVAL": "1e300"}, "HEARTBEAT_INTERVAL"),
        ({"MAX_BODY_BYTES": "99999999999999"}, "MAX_BODY_BYTES"),
        ({"BEAT_LOCK_TIMEOUT": "100000000000000000000"}, "BEAT_LOCK_TIMEOUT"),
        ({"BEAT_LOCK_TIMEOUT": "9" * 5000}, "BEAT_LOCK_TIMEOUT"),
        ({"GRACEFUL_TIMEOUT": "3601"}, "GRACEFUL_TIMEOUT"),
        ({"TASK_TIME_LIMIT": "604801"}, "TASK_TIME_LIMIT"),
        ({"RESULT_EXPIRES": "31536001"}, "RESULT_EXPIRES"),
        ({"VISIBILITY_TIMEOUT": "1209601"}, "VISIBILITY_TIMEOUT"),
        ({"PORT": "\u0663"}, "PORT"),  # an Arabic-Indic digit: int() would take it
        ({"PLUGIN": "not a reference"}, "PLUGIN"),
        ({"HOST": "localhost"}, "HOST"),
        ({"TASK_EVENTS": "maybe"}, "TASK_EVENTS"),
        ({"METRICS_PORT": "70000"}, "METRICS_PORT"),
        ({"METRICS_PORT": "5001"}, "METRICS_PORT"),
        ({"HOST": "300.1.1.1"}, "HOST"),
        ({"PLUGIN": "module:attr:more"}, "PLUGIN"),
        ({"MODE": "worker"}, "BROKER_URL"),
        ({"MODE": "beat"}, "BROKER_URL"),
        ({"MODE": "api"}, "BROKER_URL"),
        ({"BROKER_URL": "amqp://rabbit:5672//"}, "RESULT_BACKEND"),
        ({"BROKER_URL": "pyamqp://rabbit:5672//"}, "RESULT_BACKEND"),
    ],
)
def test_invalid_variable_is_named(data_dir: Path, environ: dict[str, str], variable: str) -> None:
    error = refused(data_dir, **environ)

    assert error.variable == variable
    assert str(error).startswith(f"{variable}: ")
    assert error.problem in str(error)


@pytest.mark.parametrize(
    ("environ", "variable", "secret"),
    [
        ({"API_TOKENS": "short-secret"}, "API_TOKENS", "short-secret"),
        ({"API_TOKENS": "good-token-0123456789,bad secret token"}, "API_TOKENS", "bad secret"),
        ({"BROKER_URL": "ftp://user:hunter2@host"}, "BROKER_URL", "hunter2"),
        ({"BROKER_URL": "redis://:hunter2@host:port/0"}, "BROKER_URL", "hunter2"),
        ({"BROKER_URL": "redis://:hunter2@[::1/0"}, "BROKER_URL", "hunter2"),
        ({"RESULT_BACKEND": "mongodb://u:hunter2@db/r"}, "RESULT_BACKEND", "hunter2"),
        ({"BEAT_LOCK_URL": "amqp://u:hunter2@rabbit//"}, "BEAT_LOCK_URL", "hunter2"),
        (
            {"MODE": "worker", "BROKER_URL": "amqp://u:hunter2@rabbit//"},
            "RESULT_BACKEND",
            "hunter2",
        ),
        ({"PORT": "distinctive-port-value"}, "PORT", "distinctive-port-value"),
        ({"MODE": "distinctive-mode"}, "MODE", "distinctive-mode"),
    ],
)
def test_error_never_contains_the_value(
    data_dir: Path, environ: dict[str, str], variable: str, secret: str
) -> None:
    error = refused(data_dir, **environ)

    assert error.variable == variable
    for text in (str(error), repr(error), error.problem, *map(str, error.args)):
        assert secret not in text
        assert "hunter2" not in text


def test_second_bad_token_is_named_by_position(data_dir: Path) -> None:
    error = refused(data_dir, API_TOKENS="good-token-0123456789,tiny")
    assert "#2" in error.problem


def test_values_are_stripped_and_case_folded(data_dir: Path) -> None:
    settings = load_settings(
        {
            "DATA_DIR": str(data_dir),
            "MODE": " API ",
            "BROKER_URL": f" {REDIS} ",
            "LOG_LEVEL": "warning",
            "PORT": " 8000 ",
        }
    )
    assert (settings.mode, settings.log_level, settings.port) == ("api", "WARNING", 8000)
    assert settings.broker_url == REDIS


@pytest.mark.parametrize("broker", ["redis://:pw@redis:6379/0", "rediss://redis:6380/3"])
def test_redis_broker_is_also_the_result_backend_and_the_beat_lock(
    data_dir: Path, broker: str
) -> None:
    settings = load_settings({"DATA_DIR": str(data_dir), "MODE": "worker", "BROKER_URL": broker})
    assert settings.result_backend == broker
    assert settings.beat_lock_url == broker
    assert not settings.embedded


def test_explicit_result_backend_wins(data_dir: Path) -> None:
    settings = load_settings(
        {"DATA_DIR": str(data_dir), "BROKER_URL": REDIS, "RESULT_BACKEND": "redis://other:6379/1"}
    )
    assert settings.result_backend == "redis://other:6379/1"
    assert settings.beat_lock_url == REDIS


@pytest.mark.parametrize(
    ("environ", "lock_url"),
    [
        ({}, ""),
        (
            {"BROKER_URL": "amqp://rabbit//", "RESULT_BACKEND": "redis://r:6379/1"},
            "redis://r:6379/1",
        ),
        ({"BROKER_URL": "amqp://rabbit//", "RESULT_BACKEND": "file:///srv/results"}, ""),
        ({"BROKER_URL": REDIS, "BEAT_LOCK_URL": "redis://locks:6379/5"}, "redis://locks:6379/5"),
        ({"BROKER_URL": "filesystem://"}, ""),
    ],
)
def test_beat_lock_url_default(data_dir: Path, environ: dict[str, str], lock_url: str) -> None:
    assert load_settings({"DATA_DIR": str(data_dir), **environ}).beat_lock_url == lock_url


def test_soft_time_limit_follows_the_hard_limit(data_dir: Path) -> None:
    def soft(**environ: str) -> int:
        return load_settings({"DATA_DIR": str(data_dir), **environ}).task_soft_time_limit

    assert soft() == 270
    assert soft(TASK_TIME_LIMIT="100") == 90
    assert soft(TASK_TIME_LIMIT="10") == 9
    assert soft(TASK_TIME_LIMIT="1") == 1
    assert soft(TASK_TIME_LIMIT="60", TASK_SOFT_TIME_LIMIT="60") == 60


@pytest.mark.parametrize(
    ("variable", "low", "high"),
    [
        ("PORT", "1", "65535"),
        ("WEB_CONCURRENCY", "1", "64"),
        ("BROKER_CONNECT_TIMEOUT", "0.1", "60"),
        ("MAX_BODY_BYTES", "64", "16777216"),
        ("BEAT_LOCK_TIMEOUT", "3", "3600"),
    ],
)
def test_bounds_are_inclusive(data_dir: Path, variable: str, low: str, high: str) -> None:
    for value in (low, high):
        settings = load_settings({"DATA_DIR": str(data_dir), variable: value})
        assert float(getattr(settings, variable.lower())) == float(value)


def test_dotenv_is_read_and_the_real_environment_wins(data_dir: Path) -> None:
    Path(".env").write_text(
        "# local settings\n"
        "\n"
        "export PORT=6000\n"
        'LOG_FORMAT="console"\n'
        "LOG_LEVEL='debug'\n"
        "not a setting\n"
        "WEB_CONCURRENCY = 3\n",
        encoding="utf-8",
    )

    settings = load_settings({"DATA_DIR": str(data_dir), "PORT": "7000"})

    assert settings.port == 7000
    assert settings.log_format == "console"
    assert settings.log_level == "DEBUG"
    assert settings.web_concurrency == 3


def test_dotenv_errors_are_reported_like_the_environment(data_dir: Path) -> None:
    Path(".env").write_text("WORKER_CONCURRENCY=0\n", encoding="utf-8")
    assert refused(data_dir).variable == "WORKER_CONCURRENCY"


def test_process_environment_is_read_without_an_argument(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "6123")
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    Path(".env").write_text("PORT=6000\nLOG_FORMAT=console\n", encoding="utf-8")

    settings = load_settings()

    assert settings.port == 6123
    assert settings.log_format == "console"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"CELERY_BROKER_URL": "redis://:pw@elsewhere:6379/0"}, "CELERY_BROKER_URL"),
        ({"CELERY_RESULT_BACKEND": "redis://elsewhere:6379/1"}, "CELERY_RESULT_BACKEND"),
        ({"DATA_DIR": "relative/dir"}, "DATA_DIR"),
        ({"MODE": "worker", "BROKER_URL": "filesystem://"}, "BROKER_URL"),
        ({"MODE": "api", "BROKER_URL": REDIS, "RESULT_BACKEND": "file:///srv/r"}, "RESULT_BACKEND"),
        ({"BROKER_URL": REDIS, "VISIBILITY_TIMEOUT": "300"}, "VISIBILITY_TIMEOUT"),
        (
            {"BROKER_URL": REDIS, "VISIBILITY_TIMEOUT": "60", "TASK_TIME_LIMIT": "90"},
            "VISIBILITY_TIMEOUT",
        ),
    ],
)
def test_unsafe_combinations_are_refused(
    data_dir: Path, environ: dict[str, str], variable: str
) -> None:
    error = refused(data_dir, **environ)
    assert error.variable == variable
    assert "pw@" not in str(error)


def test_celery_copies_of_our_urls_are_accepted(data_dir: Path) -> None:
    """`celery` copies BROKER_URL and RESULT_BACKEND into its own variables: same values, fine."""
    settings = load_settings(
        {
            "DATA_DIR": str(data_dir),
            "BROKER_URL": REDIS,
            "CELERY_BROKER_URL": REDIS,
            "RESULT_BACKEND": "redis://redis:6379/1",
            "CELERY_RESULT_BACKEND": "redis://redis:6379/1",
        }
    )
    assert settings.broker_url == REDIS


def test_visibility_timeout_is_free_with_rabbitmq(data_dir: Path) -> None:
    settings = load_settings(
        {
            "DATA_DIR": str(data_dir),
            "BROKER_URL": "amqp://rabbit//",
            "RESULT_BACKEND": REDIS,
            "VISIBILITY_TIMEOUT": "10",
        }
    )
    assert settings.visibility_timeout == 10


def test_dotenv_inline_comments_are_dropped_as_compose_does(data_dir: Path) -> None:
    Path(".env").write_text(
        'LOG_LEVEL=DEBUG # chatty\nAPI_TOKENS="abc#defghijklmnopq"\n', encoding="utf-8"
    )
    settings = load_settings({"DATA_DIR": str(data_dir)})
    assert settings.log_level == "DEBUG"
    assert settings.api_tokens == ("abc#defghijklmnopq",)


def test_unreadable_dotenv_is_a_configuration_error(data_dir: Path) -> None:
    Path(".env").write_bytes(b"PORT=\xff\xfe\n")
    assert refused(data_dir).variable == ".env"


def test_dotenv_follows_compose_rules_for_quotes_escapes_and_variables(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three rules of Compose's `.env` syntax a hand-written parser broke."""
    monkeypatch.setenv("FROM_THE_ENVIRONMENT", "outer")
    Path(".env").write_text(
        'QUOTED="value" # a comment after a quoted value\n'
        'ESCAPED="line one\\nline two"\n'
        "BASE=base-value\n"
        "EXPANDED=${BASE}/and/${FROM_THE_ENVIRONMENT}\n",
        encoding="utf-8",
    )
    env = environment({})
    assert env["QUOTED"] == "value"
    assert env["ESCAPED"] == "line one\nline two"
    assert env["EXPANDED"] == "base-value/and/outer"
