"""Demo data: `manage.py seed_demo --articles 200 --certificates 50`.

The same arguments give the same rows (ids derive from the index, text from a
seeded generator), so a second run adds nothing and row counts are predictable
for backup and restore checks. Text and JSON are random-looking on purpose:
repetitive rows compress far better than real data and make dumps look free.
"""

import random
import uuid
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from articles.models import Article
from certificates.models import Certificate
from certificates.tasks import generate_certificate

NAMESPACE = uuid.UUID("6f1c1f3e-3d3a-4c47-9a51-5b1f7f0c2a10")
WORDS = (  # noqa: SIM905 - a word list reads better as prose than as 40 quoted items
    "analysis approach boundary catalyst cellular coherent data dynamic emergent entropy evidence "
    "field framework gradient inference kinetic lattice latent manifold metric model network optimal "
    "protein quantum random regime sample signal spectral stable structure synthesis theory thermal "
    "topology transition uncertainty variance vector"
).split()
SURNAMES = (  # noqa: SIM905 - as above
    "Abdullaev Karimova Nazarov Petrova Rahimov Smith Tursunov Usmonova Yusupov Zhang"
).split()
STATUSES = [Article.Status.PUBLISHED] * 6 + [Article.Status.SUBMITTED] * 2 + [Article.Status.DRAFT]
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
BATCH = 1000


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _article(index: int, rng: random.Random) -> Article:
    status = rng.choice(STATUSES)
    return Article(
        submission_id=uuid.uuid5(NAMESPACE, f"article-{index}"),
        title=_sentence(rng, rng.randint(4, 9)).capitalize(),
        author=f"{rng.choice(SURNAMES)} {chr(65 + rng.randrange(26))}.",
        status=status,
        abstract=" ".join(_sentence(rng, rng.randint(8, 20)) + "." for _ in range(rng.randint(3, 8))),
        metadata={
            "keywords": rng.sample(WORDS, 4),
            "pages": rng.randint(4, 40),
            "doi": f"10.5555/journal.{index:07d}",
            "reviewers": [rng.choice(SURNAMES) for _ in range(rng.randint(1, 3))],
        },
        published_at=EPOCH + timedelta(hours=index) if status == Article.Status.PUBLISHED else None,
    )


class Command(BaseCommand):
    help = "Create deterministic demo articles and certificates (idempotent for the same arguments)."

    def add_arguments(self, parser):
        parser.add_argument("--articles", type=int, default=20, help="number of demo articles (default 20)")
        parser.add_argument("--certificates", type=int, default=5, help="number of demo certificates (default 5)")
        parser.add_argument("--seed", type=int, default=42, help="random seed for the generated text")
        parser.add_argument(
            "--enqueue", action="store_true", help="queue certificate generation (needs a broker and a worker)"
        )

    def handle(self, *args, articles: int, certificates: int, seed: int, enqueue: bool, **options):
        if articles < 0 or certificates < 0:
            raise CommandError("--articles and --certificates must be zero or more")
        if certificates and not articles:
            raise CommandError("certificates need articles: pass --articles 1 or more")
        rng = random.Random(seed)
        before = Article.objects.count()
        for start in range(0, articles, BATCH):
            rows = [_article(i, rng) for i in range(start, min(start + BATCH, articles))]
            with transaction.atomic():
                # ignore_conflicts on the unique submission_id makes a second run a no-op.
                Article.objects.bulk_create(rows, ignore_conflicts=True)
        created_articles = Article.objects.count() - before

        ids = list(
            Article.objects.filter(
                submission_id__in=[uuid.uuid5(NAMESPACE, f"article-{i}") for i in range(articles)]
            ).values_list("submission_id", "id")
        )
        by_submission = dict(ids)
        new_certificates = []
        for index in range(certificates):
            article_id = by_submission[uuid.uuid5(NAMESPACE, f"article-{index % articles}")]
            new_certificates.append(
                Certificate(
                    certificate_id=uuid.uuid5(NAMESPACE, f"certificate-{index}"),
                    article_id=article_id,
                    recipient=f"{rng.choice(SURNAMES)} {chr(65 + rng.randrange(26))}.",
                )
            )
        before_certificates = Certificate.objects.count()
        with transaction.atomic():
            Certificate.objects.bulk_create(new_certificates, ignore_conflicts=True)
        created_certificates = Certificate.objects.count() - before_certificates

        queued = 0
        if enqueue:
            for certificate in Certificate.objects.filter(
                pk__in=[c.certificate_id for c in new_certificates], status=Certificate.Status.PENDING
            ):
                generate_certificate.delay(str(certificate.certificate_id))
                queued += 1
        self.stdout.write(
            f"articles: {created_articles} created, {Article.objects.count()} total; "
            f"certificates: {created_certificates} created, {Certificate.objects.count()} total; "
            f"queued: {queued}"
        )
