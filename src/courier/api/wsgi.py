"""The WSGI callable gunicorn serves: `courier.api.wsgi:application`."""

from courier.api.app import create_app
from courier.celery_app import app as celery
from courier.celery_app import settings
from courier.logs import configure_logging

configure_logging(settings)
application = create_app(settings, celery)
