"""The queue: courier's Celery wiring (the app, worker and beat roles, submitting and reading
jobs). Keep it; business tasks plug in through `courier.plugin`."""
