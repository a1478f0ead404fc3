"""v4's broken migration: it fails on purpose, after a schema change, inside its transaction.

PostgreSQL runs DDL transactionally and Django wraps each migration in one
transaction, so the failure rolls the added column back: the schema stays at v2
and django_migrations records nothing. A deploy must stop here and keep serving
the previous release.
"""

from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError(
        "journal v4: migration articles.0003_article_word_count fails on purpose "
        "(sample of a broken release; nothing is applied)"
    )


class Migration(migrations.Migration):
    atomic = True

    dependencies = [
        ("articles", "0002_article_summary"),
    ]

    operations = [
        # Plain SQL with no state change, so makemigrations stays quiet about models.py.
        migrations.RunSQL(
            sql="ALTER TABLE articles_article ADD COLUMN word_count integer NULL",
            reverse_sql="ALTER TABLE articles_article DROP COLUMN word_count",
        ),
        migrations.RunPython(fail, migrations.RunPython.noop),
    ]
