"""v5's irreversible migration: a data migration without reverse code.

It fills Article.summary from the abstract where it is empty. Nothing says what the
summaries were before, so it has no reverse_code: `migrate articles 0002 --plan` marks it
IRREVERSIBLE and `migrate articles 0002` raises IrreversibleError. A rollback that would
reverse it must refuse before any change and point at the pre-deploy backup instead.
"""

from django.db import migrations


def backfill(apps, schema_editor):
    """Article.summary := the abstract's first 200 characters, where the summary is empty."""
    article = apps.get_model("articles", "Article")
    for row in article.objects.filter(summary__isnull=True).exclude(abstract="").only("id", "abstract"):
        article.objects.filter(pk=row.pk).update(summary=row.abstract[:200])


class Migration(migrations.Migration):
    dependencies = [
        ("articles", "0002_article_summary"),
    ]

    operations = [
        migrations.RunPython(backfill),
    ]
