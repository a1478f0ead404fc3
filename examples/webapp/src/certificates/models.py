import uuid

from django.db import models

from articles.models import Article


class Certificate(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        ISSUED = "ISSUED"
        FAILED = "FAILED"
        REVOKED = "REVOKED"

    certificate_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    article = models.ForeignKey(Article, on_delete=models.PROTECT, related_name="certificates")
    recipient = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    # Relative to MEDIA_ROOT, empty until the worker has written the file.
    file = models.FileField(upload_to="certificates/", blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    issued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.certificate_id} ({self.status})"

    def as_dict(self) -> dict:
        return {
            "id": str(self.certificate_id),
            "article_id": self.article_id,
            "recipient": self.recipient,
            "status": self.status,
            "file": self.file.name or None,
            "path": self.file.path if self.file else None,
            "task_id": self.task_id or None,
            "created_at": self.created_at.isoformat(),
            "issued_at": self.issued_at.isoformat() if self.issued_at else None,
        }
