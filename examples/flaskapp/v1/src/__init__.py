"""pdfsmall: a small Flask + Celery app in the shape of PDF Smaller (seed 004).

`create_app()` is the app factory; `src.main:app` is what Gunicorn and `flask` load,
`src.tasks.tasks` what `celery -A` loads.
"""

from __future__ import annotations

import socket
from pathlib import Path

import redis
from flask import Flask

from src.config import Config
from src.extensions import db, migrate

BASE_DIR = Path(__file__).resolve().parent.parent


def read_release(base_dir: Path = BASE_DIR) -> str:
    """The served release: RELEASE (written by the deploy tool) wins over VERSION (committed)."""
    for name in ("RELEASE", "VERSION"):
        try:
            text = (base_dir / name).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        if text:
            return text
    return "unknown"


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_object(Config())
    app.config.update(config or {})
    app.config["RELEASE"] = read_release()
    app.config["HOSTNAME"] = socket.gethostname()
    # One client (and connection pool) per process, for the health check; it connects on first use.
    app.extensions["redis"] = redis.Redis.from_url(app.config["REDIS_URL"], socket_timeout=2)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))

    from src import models  # noqa: F401  (the models, for Flask-Migrate)
    from src.views import bp

    app.register_blueprint(bp)
    return app
