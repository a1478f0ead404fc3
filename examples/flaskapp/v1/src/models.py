"""A compression job (the seed's `jobs` table): created by the API, finished by a Celery worker."""

from __future__ import annotations

from datetime import UTC, datetime

from src.extensions import db


class Job(db.Model):
    __tablename__ = "jobs"

    id = db.Column(db.Integer, primary_key=True)
    filename = db.Column(db.String(255), nullable=False)
    original_size = db.Column(db.Integer, nullable=False)
    compressed_size = db.Column(db.Integer, nullable=True)
    status = db.Column(db.String(20), nullable=False, default="pending")
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=lambda: datetime.now(UTC))
    finished_at = db.Column(db.DateTime(timezone=True), nullable=True)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "filename": self.filename,
            "original_size": self.original_size,
            "compressed_size": self.compressed_size,
            "status": self.status,
        }
