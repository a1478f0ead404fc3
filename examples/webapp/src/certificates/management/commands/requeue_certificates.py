from django.core.management.base import BaseCommand

from certificates.models import Certificate
from certificates.tasks import generate_certificate


class Command(BaseCommand):
    help = "Queue generation again for certificates that have no file yet (the runbook's bulk retry)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="list what would be queued, queue nothing")

    def handle(self, *args, dry_run: bool = False, **options):
        pending = Certificate.objects.filter(
            status__in=[Certificate.Status.PENDING, Certificate.Status.FAILED], file=""
        ).order_by("created_at")
        count = 0
        for certificate in pending.iterator():
            if not dry_run:
                result = generate_certificate.delay(str(certificate.certificate_id))
                Certificate.objects.filter(pk=certificate.pk).update(task_id=result.id)
            self.stdout.write(f"{'would queue' if dry_run else 'queued'} certificate {certificate.certificate_id}")
            count += 1
        self.stdout.write(f"{count} certificate(s) {'to queue' if dry_run else 'queued'}")
