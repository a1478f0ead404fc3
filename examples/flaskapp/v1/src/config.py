"""Settings from the environment (opsbook's env file, shared/env, or the seed's variables)."""

from __future__ import annotations

import os

from sqlalchemy.engine import URL


def database_url() -> str | URL:
    """The seed's DATABASE_URL when set, else opsbook's DATABASE_* variables (built with
    URL.create, so a password with @, : or % needs no escaping)."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    return URL.create(
        "postgresql+psycopg",
        username=os.environ.get("DATABASE_USER", "pdfsmall"),
        password=os.environ.get("DATABASE_PASSWORD") or None,
        host=os.environ.get("DATABASE_HOST", "127.0.0.1"),
        port=int(os.environ.get("DATABASE_PORT", "5432")),
        database=os.environ.get("DATABASE_NAME", "pdfsmall"),
    )


class Config:
    def __init__(self) -> None:
        # SECRET_KEY as the seed names it; opsbook's env file calls it DJANGO_SECRET_KEY.
        self.SECRET_KEY = os.environ.get("SECRET_KEY") or os.environ.get("DJANGO_SECRET_KEY")
        if not self.SECRET_KEY:
            raise RuntimeError("SECRET_KEY (or DJANGO_SECRET_KEY) is not set: set it in the environment")
        self.SQLALCHEMY_DATABASE_URI = database_url()
        self.SQLALCHEMY_ENGINE_OPTIONS = {
            "pool_pre_ping": True,
            "pool_size": int(os.environ.get("DB_POOL_SIZE", "5")),
            "max_overflow": int(os.environ.get("DB_MAX_OVERFLOW", "10")),
            "pool_recycle": int(os.environ.get("DB_POOL_RECYCLE", "3600")),
        }
        self.REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def broker_url() -> str:
    """Celery's broker: opsbook writes CELERY_BROKER_URL (the Redis of REDIS_URL unless app_broker
    says otherwise), the seed REDIS_URL. No result backend: a job's result is its row."""
    return os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
