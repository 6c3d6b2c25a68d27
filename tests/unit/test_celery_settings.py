"""Celery settings that differ by role: the API fails fast, a worker waits out an outage."""

from __future__ import annotations

from pathlib import Path

from celery import signals

from courier.queue.app import PATIENT_RETRY_POLICY, PUBLISH_RETRY_POLICY
from courier.settings import load_settings
from tests.unit.conftest import celery_for

REDIS = "redis://redis:6379/0"


def test_the_api_fails_fast(data_dir: Path) -> None:
    celery = celery_for(load_settings({"DATA_DIR": str(data_dir), "BROKER_URL": REDIS}))
    assert celery.conf.task_publish_retry_policy == PUBLISH_RETRY_POLICY
    assert celery.backend.always_retry is False
    assert celery.backend.retry_policy["max_retries"] == 0  # the API's own bounded retry decides
    assert celery.conf.redis_retry_on_timeout is False
    assert celery.conf.redis_socket_timeout == 3.0
    assert celery.conf.broker_transport_options["socket_timeout"] == 3.0
    assert celery.conf.broker_transport_options["max_retries"] == 0  # connect once, then 503


def test_a_worker_waits_out_a_broker_restart(data_dir: Path) -> None:
    celery = celery_for(load_settings({"DATA_DIR": str(data_dir), "BROKER_URL": REDIS}))
    # Celery's worker finalizes the app (registering its tasks) before it sends celeryd_init:
    # nothing may build the result backend then, or it keeps the API's impatient settings.
    celery.finalize()
    # What `celery worker` sends before it builds anything (the backend included).
    signals.celeryd_init.send(sender="worker@test", instance=None, conf=celery.conf, options={})
    assert celery.conf.task_publish_retry_policy == PATIENT_RETRY_POLICY
    assert "max_retries" not in celery.conf.broker_transport_options  # reconnects patiently
    assert celery.backend.always_retry is True
    assert celery.backend.retry_policy["max_retries"] == PATIENT_RETRY_POLICY["max_retries"]


def test_redis_brokers_keep_running_jobs_on_a_lost_connection(data_dir: Path) -> None:
    redis = celery_for(load_settings({"DATA_DIR": str(data_dir), "BROKER_URL": REDIS}))
    amqp = celery_for(
        load_settings(
            {"DATA_DIR": str(data_dir), "BROKER_URL": "amqp://rabbit//", "RESULT_BACKEND": REDIS}
        )
    )
    assert redis.conf.worker_cancel_long_running_tasks_on_connection_loss is False
    assert amqp.conf.worker_cancel_long_running_tasks_on_connection_loss is True
    assert redis.conf.worker_deduplicate_successful_tasks is True


def test_rabbitmq_calls_are_bounded_in_the_api_and_not_in_a_worker(data_dir: Path) -> None:
    """A hung RabbitMQ fails the API's publish or readiness probe within BROKER_TIMEOUT; a
    worker's consumer, which waits on an idle connection for its next job, has no such bound."""
    environ = {
        "DATA_DIR": str(data_dir),
        "BROKER_URL": "amqp://rabbit//",
        "RESULT_BACKEND": REDIS,
        "BROKER_TIMEOUT": "2.5",
    }
    api = celery_for(load_settings(environ))
    assert api.conf.broker_transport_options == {"read_timeout": 2.5, "write_timeout": 2.5}
    with api.connection_for_write() as connection:
        # kombu hands transport options to py-amqp's connection as they are.
        assert connection.transport_options["read_timeout"] == 2.5

    worker = celery_for(load_settings(environ))
    signals.celeryd_init.send(sender="worker@test", instance=None, conf=worker.conf, options={})
    assert worker.conf.broker_transport_options == {}
