"""The WSGI application: `gunicorn src.main:app`, `FLASK_APP=src.main flask db upgrade`."""

from src import create_app

app = create_app()
