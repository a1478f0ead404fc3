"""WSGI entry point: `gunicorn journal.wsgi:application` (see gunicorn.conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "journal.settings")

application = get_wsgi_application()
