"""HTTP endpoints: health (read by the deploy's gates and HAProxy), version, jobs."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import text

from src.extensions import db
from src.models import Job

bp = Blueprint("pdfsmall", __name__)


def _check(fn) -> str:
    try:
        fn()
    except Exception as exc:  # any failure makes the component, not the endpoint, fail
        return f"error: {type(exc).__name__}"
    return "ok"


@bp.get("/health")
def health():
    """200 {"status": "healthy", ...} when PostgreSQL and Redis answer, else 503 "unhealthy"."""
    checks = {
        "database": _check(lambda: db.session.execute(text("select 1"))),
        "redis": _check(lambda: current_app.extensions["redis"].ping()),
    }
    healthy = all(value == "ok" for value in checks.values())
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "checks": checks,
        "version": current_app.config["RELEASE"],
        "hostname": current_app.config["HOSTNAME"],
    }
    return jsonify(body), 200 if healthy else 503


@bp.get("/version")
def version():
    return jsonify(version=current_app.config["RELEASE"], hostname=current_app.config["HOSTNAME"])


@bp.post("/api/jobs")
def create_job():
    """A compression job: its row now, the work on a Celery worker (src.tasks.tasks.compress)."""
    data = request.get_json(silent=True) or {}
    filename, size = data.get("filename"), data.get("size")
    if not isinstance(filename, str) or not filename or not isinstance(size, int) or size <= 0:
        return jsonify(error="filename (a string) and size (a positive integer) are required"), 400
    job = Job(filename=filename, original_size=size)
    db.session.add(job)
    db.session.commit()
    from src.tasks.tasks import compress

    compress.delay(job.id)
    return jsonify(job.to_dict()), 202


@bp.get("/api/jobs/<int:job_id>")
def get_job(job_id: int):
    job = db.session.get(Job, job_id)
    if job is None:
        return jsonify(error="no such job"), 404
    return jsonify(job.to_dict())
