"""Celery application for journal: `celery -A journal worker` / `celery -A journal beat`."""

import logging.config
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "journal.settings")

app = Celery("journal")
# Every setting named CELERY_<NAME> in Django settings becomes Celery's <name>.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def setup_django(**_kwargs: object) -> None:
    """Load Django's apps when the Celery CLI is the entry point (`celery -A journal call ...`).

    The "django-db" result backend imports Django models. A worker sets Django up itself,
    and manage.py and gunicorn have done it already, but client commands such as
    `celery call` or `celery result` would fail with AppRegistryNotReady.
    """
    import django
    from django.apps import apps

    if not apps.ready and not apps.loading:
        django.setup()


@signals.setup_logging.connect
def configure_logging(**_kwargs: object) -> None:
    """Workers log like the web processes (stdout plus LOG_DIR/app.log) instead of Celery's own setup."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
