"""The Celery app that Celery's own command line loads: `celery --app courier.queue.main ...`
(inspect, Flower, or a role started by hand)."""

from courier.queue.app import load_celery

app = load_celery()
