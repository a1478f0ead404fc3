"""A tiny Celery application for the module tests: `celery -A celery_testapp worker`.

The broker comes from the environment (never argv, where ps would show its password):
CELERY_TESTAPP_BROKER, and optionally CELERY_TESTAPP_TRANSPORT_OPTIONS (JSON) and
CELERY_TESTAPP_ACCEPT (content types), so the same module serves the Redis and the RabbitMQ workers.
"""

from __future__ import annotations

import json
import os
import time

from celery import Celery

app = Celery("celery_testapp", broker=os.environ.get("CELERY_TESTAPP_BROKER", "memory://"))
app.conf.update(
    broker_transport_options=json.loads(os.environ.get("CELERY_TESTAPP_TRANSPORT_OPTIONS") or "{}"),
    broker_connection_retry_on_startup=True,
    # As the sample app runs: a task is acknowledged after it ran, one message prefetched per process.
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)
# CELERY_TESTAPP_ACCEPT="pickle" (comma-separated): an app that accepts only those content types and
# writes its messages, control replies included, in the first.
if os.environ.get("CELERY_TESTAPP_ACCEPT"):
    _accept = os.environ["CELERY_TESTAPP_ACCEPT"].split(",")
    app.conf.update(accept_content=_accept, task_serializer=_accept[0], result_serializer=_accept[0])


@app.task(name="celery_testapp.sleep")
def sleep(seconds: float = 1.0) -> float:
    time.sleep(float(seconds))
    return float(seconds)


@app.task(name="celery_testapp.fail")
def fail(message: str = "failed on purpose") -> None:
    raise RuntimeError(message)


@app.task(name="celery_testapp.add")
def add(x: int, y: int) -> int:
    return x + y
