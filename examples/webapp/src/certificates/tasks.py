import logging
import os
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from .models import Certificate

logger = logging.getLogger(__name__)


def render_certificate(certificate: Certificate) -> str:
    article = certificate.article
    return (
        "CERTIFICATE OF PUBLICATION\n"
        "\n"
        f"Certificate: {certificate.certificate_id}\n"
        f"Awarded to:  {certificate.recipient}\n"
        f"Article:     {article.title} ({article.submission_id})\n"
        f"Author:      {article.author}\n"
        f"Issued:      {timezone.now().isoformat()}\n"
        f"Release:     {settings.JOURNAL_RELEASE}\n"
    )


@shared_task(name="certificates.tasks.generate_certificate", bind=True, max_retries=3, default_retry_delay=10)
def generate_certificate(self, certificate_id: str) -> str:
    """Write MEDIA_ROOT/certificates/<uuid>.txt and record it; safe to run twice for one certificate."""
    certificate = Certificate.objects.select_related("article").get(certificate_id=certificate_id)
    if certificate.status == Certificate.Status.REVOKED:
        logger.info("certificate %s is revoked, not generating", certificate_id)
        return ""
    relative = f"certificates/{certificate.certificate_id}.txt"
    target = Path(settings.MEDIA_ROOT) / relative
    # Write then rename, so a reader never sees half a certificate.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(render_certificate(certificate), encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        if self.request.retries >= self.max_retries:
            Certificate.objects.filter(pk=certificate.pk).update(status=Certificate.Status.FAILED)
            raise
        raise self.retry(exc=exc) from exc
    certificate.file.name = relative
    certificate.status = Certificate.Status.ISSUED
    certificate.issued_at = timezone.now()
    if self.request.id:
        certificate.task_id = self.request.id
    certificate.save(update_fields=["file", "status", "issued_at", "task_id"])
    logger.info("certificate %s written to %s", certificate_id, target)
    return str(target)
