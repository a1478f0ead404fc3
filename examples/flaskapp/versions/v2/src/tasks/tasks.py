"""Celery: `celery -A src.tasks.tasks worker` (the seed's `celery -A src.tasks.tasks inspect active`).

Every task runs inside a Flask app context (the worker's own app, made once), so it uses the
same models and session as the web processes.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from celery import Celery, Task
from flask import Flask, current_app, has_app_context

from src import create_app
from src.config import broker_url
from src.extensions import db
from src.models import Job


@functools.cache
def flask_app() -> Flask:
    return create_app()


class FlaskTask(Task):
    def __call__(self, *args, **kwargs):
        if has_app_context():
            return self.run(*args, **kwargs)
        with flask_app().app_context():
            return self.run(*args, **kwargs)


celery = Celery("pdfsmall", task_cls=FlaskTask, broker=broker_url())
celery.conf.update(
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    broker_connection_retry_on_startup=True,
)


@celery.task(name="pdfsmall.compress")
def compress(job_id: int) -> None:
    """'Compress' the job's file: its compressed size is 40 % of the original, then it is done,
    by this release."""
    job = db.session.get(Job, job_id)
    if job is None:
        return
    job.compressed_size = job.original_size * 2 // 5
    job.status = "done"
    job.finished_at = datetime.now(UTC)
    job.processed_by = current_app.config["RELEASE"]
    db.session.commit()
