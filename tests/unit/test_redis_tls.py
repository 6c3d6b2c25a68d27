"""`rediss://` URLs: their TLS options reach Celery, and bad ones stop the process at start."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from courier.queue.app import celery_config
from courier.settings import ConfigError, load_settings, redis_tls_options
from tests.unit.conftest import demo_plugin


def test_plain_redis_has_no_tls_options() -> None:
    assert redis_tls_options("redis://redis:6379/0") is None


def test_certificate_is_verified_by_default() -> None:
    assert redis_tls_options("rediss://:pw@redis:6379/0") == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("required", ssl.CERT_REQUIRED), ("optional", ssl.CERT_OPTIONAL), ("none", ssl.CERT_NONE)],
)
def test_cert_reqs_values(value: str, expected: ssl.VerifyMode) -> None:
    options = redis_tls_options(f"rediss://redis:6379/0?ssl_cert_reqs={value}")
    assert options == {"ssl_cert_reqs": expected}


def test_files_are_passed_through() -> None:
    url = "rediss://redis:6379/0?ssl_ca_certs=/certs/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
    assert redis_tls_options(url) == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": "/certs/ca.pem",
        "ssl_certfile": "/c.pem",
        "ssl_keyfile": "/k.pem",
    }


def test_broker_and_backend_get_their_own_tls_options(data_dir: Path) -> None:
    settings = load_settings(
        {
            "DATA_DIR": str(data_dir),
            "BROKER_URL": "rediss://redis:6379/0?ssl_ca_certs=/certs/broker.pem",
            "RESULT_BACKEND": "redis://redis:6379/1",
        }
    )
    config = celery_config(settings, demo_plugin())
    assert config["broker_use_ssl"] == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": "/certs/broker.pem",
    }
    assert config["redis_backend_use_ssl"] is None


@pytest.mark.parametrize(
    ("variable", "url", "problem"),
    [
        ("BROKER_URL", "rediss://redis:6379/0?ssl_cert_reqs=CERT_REQUIRED", "ssl_cert_reqs"),
        ("BROKER_URL", "redis://redis:6379/0?ssl_ca_certs=/ca.pem", "rediss://"),
        ("RESULT_BACKEND", "rediss://redis:6379/1?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
        ("BEAT_LOCK_URL", "redis://redis:6379/2?ssl_cert_reqs=none", "rediss://"),
    ],
)
def test_bad_tls_options_are_config_errors(
    data_dir: Path, variable: str, url: str, problem: str
) -> None:
    environ = {"DATA_DIR": str(data_dir), "BROKER_URL": "redis://redis:6379/0", variable: url}
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert caught.value.variable == variable
    assert problem in caught.value.problem
