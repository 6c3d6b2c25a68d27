"""courier: one Falcon API and its Celery tasks, shipped as one container image."""
