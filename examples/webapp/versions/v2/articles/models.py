import uuid

from django.db import models


class Article(models.Model):
    class Status(models.TextChoices):
        DRAFT = "DRAFT"
        SUBMITTED = "SUBMITTED"
        PUBLISHED = "PUBLISHED"
        RETRACTED = "RETRACTED"

    submission_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=255)
    author = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    abstract = models.TextField(blank=True)
    # v2: nullable and without a database default, so v1 code (which never names it) keeps
    # inserting rows against the v2 schema during a rolling or blue/green deploy.
    summary = models.TextField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title

    def as_dict(self) -> dict:
        return {
            "id": self.pk,
            "submission_id": str(self.submission_id),
            "title": self.title,
            "author": self.author,
            "summary": self.summary,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "published_at": self.published_at.isoformat() if self.published_at else None,
        }
