import json
import socket
import time

import redis
from celery import shared_task
from django.conf import settings
from django.utils import timezone

HEARTBEAT_KEY = "journal:beat:last"


@shared_task(name="articles.tasks.record_heartbeat", ignore_result=True)
def record_heartbeat() -> dict:
    """Run by beat every 30 s: proves beat schedules and a worker executes."""
    value = {"time": timezone.now().isoformat(), "hostname": socket.gethostname()}
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.set(HEARTBEAT_KEY, json.dumps(value))
    finally:
        client.close()
    return value


@shared_task(name="articles.tasks.slow_task")
def slow_task(seconds: float = 5.0) -> float:
    """Keeps a worker busy for a while: used to exercise draining and "active task" reports."""
    time.sleep(float(seconds))
    return float(seconds)
