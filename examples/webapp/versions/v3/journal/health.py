"""Component checks behind /health/. Each one is bounded in time and returns "ok" or "error: <reason>"."""

import threading
import time

import redis
from django.conf import settings
from django.db import connection, transaction
from redis.backoff import NoBackoff
from redis.retry import Retry

# The table the database check reads: proves the schema this code needs is there,
# not just that PostgreSQL answers.
PROBE_TABLE = "articles_articlemetrics"  # v3: a table no migration creates


def _reason(exc: BaseException) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"error: {type(exc).__name__}: {first_line}"[:300]


def check_database() -> str:
    try:
        timeout_ms = int(settings.HEALTH_DATABASE_TIMEOUT * 1000)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout_ms)])
            cursor.execute("SELECT 1")
            cursor.fetchone()
            cursor.execute(f"SELECT 1 FROM {PROBE_TABLE} LIMIT 1")  # constant table name, no user input
            cursor.fetchall()
    except Exception as exc:
        return _reason(exc)
    return "ok"


def check_redis() -> str:
    timeout = settings.HEALTH_REDIS_TIMEOUT
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        # redis-py retries with backoff by default; a health check reports, it does not wait.
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    except Exception as exc:
        return _reason(exc)
    finally:
        client.close()
    return "ok"


def _ping_celery() -> str:
    from journal.celery import app

    timeout = settings.HEALTH_CELERY_TIMEOUT
    try:
        with app.connection_for_write(
            connect_timeout=timeout,
            transport_options={"socket_timeout": timeout + 1, "socket_connect_timeout": timeout},
        ) as conn:
            # One attempt, no retry loop: a broker that is down is an answer.
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
            # limit=1: return as soon as one worker answers instead of waiting the whole timeout.
            replies = app.control.ping(timeout=timeout, limit=1, connection=conn)
    except Exception as exc:
        return _reason(exc)
    if not replies:
        return "error: no worker replied"
    return "ok"


class _CeleryPingCache:
    """Keeps the last ping result per process for HEALTH_CELERY_CACHE_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: str | None = None
        self._expires = 0.0

    def get(self) -> str:
        with self._lock:  # concurrent requests share one ping instead of each sending their own
            now = time.monotonic()
            if self._value is None or now >= self._expires:
                self._value = _ping_celery()
                self._expires = time.monotonic() + settings.HEALTH_CELERY_CACHE_SECONDS
            return self._value


_celery_cache = _CeleryPingCache()


def check_celery() -> str:
    return _celery_cache.get()


def run_checks() -> dict[str, str]:
    return {
        "database": check_database(),
        "redis": check_redis(),
        "celery": check_celery(),
    }
