"""The WSGI app for a WSGI server of your own: `gunicorn courier.api.wsgi:application`."""

from courier.api.app import load_app

application = load_app()
