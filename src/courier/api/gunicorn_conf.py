"""gunicorn settings from courier's settings: `--config python:courier.api.gunicorn_conf`."""

import os

from courier.config import load_settings
from courier.logs import logging_config

_settings = load_settings()

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "courier.api.draining.DrainingSyncWorker"
# Load the app once in the master before forking: workers answer as soon as they exist, and an
# import error stops the server at start instead of in a crash loop of workers.
preload_app = True
# On SIGTERM, requests in flight (and connections already queued) get this long to finish.
graceful_timeout = _settings.graceful_timeout
timeout = 60
# Our middleware writes one access line per request with the request id; gunicorn's would repeat it.
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
logconfig_dict = logging_config(_settings.log_level, _settings.log_format)
# Heartbeat files of the workers: in memory where there is /dev/shm (the root filesystem may be
# read-only), else in the data directory.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else str(_settings.data_dir)  # noqa: S108
proc_name = "courier-api"
# No control socket: it would be written under $HOME, which is read-only in the image.
control_socket_disable = True
