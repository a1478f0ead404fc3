"""Settings for the journal sample application.

Everything that differs between machines comes from the environment (the deploy
tool writes an env file); nothing secret lives in this file. See README.md for
the list of variables.
"""

import os
import socket
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# resolve() follows a Capistrano-style `current` symlink, so BASE_DIR is the
# release directory whose code this process actually loaded.
BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def read_release(base_dir: Path) -> str:
    """The served release: RELEASE (written by the deploy tool) wins over VERSION (committed)."""
    for name in ("RELEASE", "VERSION"):
        try:
            text = (base_dir / name).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        if text:
            return text
    return "unknown"


DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it in the environment (the deploy tool's env file), "
            "or set DJANGO_DEBUG=1 for local development with an insecure key."
        )
    SECRET_KEY = "django-insecure-journal-development-only"  # DEBUG only

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")

JOURNAL_RELEASE = read_release(BASE_DIR)
JOURNAL_HOSTNAME = socket.gethostname()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "articles",
    "certificates",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "journal.urls"
WSGI_APPLICATION = "journal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": env_str("DATABASE_HOST", "127.0.0.1"),
        "PORT": env_str("DATABASE_PORT", "5432"),
        "NAME": env_str("DATABASE_NAME", "journal"),
        "USER": env_str("DATABASE_USER", "journal"),
        "PASSWORD": env_str("DATABASE_PASSWORD"),
        "CONN_MAX_AGE": int(env_float("DATABASE_CONN_MAX_AGE", 60)),
        "CONN_HEALTH_CHECKS": True,
        # A database that does not answer must not hang a request (or /health/) forever.
        "OPTIONS": {"connect_timeout": int(env_float("DATABASE_CONNECT_TIMEOUT", 5))},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or BASE_DIR / "media")

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

# Health check bounds (seconds). Every check is bounded so /health/ never hangs.
HEALTH_DATABASE_TIMEOUT = env_float("HEALTH_DATABASE_TIMEOUT", 2.0)
HEALTH_REDIS_TIMEOUT = env_float("HEALTH_REDIS_TIMEOUT", 1.0)
HEALTH_CELERY_TIMEOUT = env_float("HEALTH_CELERY_TIMEOUT", 1.0)
# The Celery ping result is kept this long in each process so load tests do not flood the broker.
HEALTH_CELERY_CACHE_SECONDS = env_float("HEALTH_CELERY_CACHE_SECONDS", 5.0)

# Celery: read by journal/celery.py through the CELERY_ namespace.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
# Certificate generation is idempotent, so a task lost with its worker is redelivered, not dropped.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "record-heartbeat": {
        "task": "articles.tasks.record_heartbeat",
        "schedule": 30.0,
    },
}
if env_str("CELERY_BEAT_SCHEDULE_FILENAME"):
    CELERY_BEAT_SCHEDULE_FILENAME = env_str("CELERY_BEAT_SCHEDULE_FILENAME")

LOG_DIR = env_str("LOG_DIR")
LOG_LEVEL = env_str("DJANGO_LOG_LEVEL", "INFO").upper()

_log_handlers: dict[str, dict] = {
    "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"},
}
if LOG_DIR:
    # WatchedFileHandler reopens the file after logrotate moves it.
    _log_handlers["file"] = {
        "class": "logging.handlers.WatchedFileHandler",
        "filename": str(Path(LOG_DIR) / "app.log"),
        "formatter": "plain",
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"},
    },
    "handlers": _log_handlers,
    "root": {"handlers": list(_log_handlers), "level": LOG_LEVEL},
    "loggers": {
        # Without this, every SQL statement at DEBUG level would be logged when LOG_LEVEL=DEBUG.
        "django.db.backends": {"level": "INFO"},
    },
}
