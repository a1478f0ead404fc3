"""Issue 23 item 4: the django_migrations filter that rollback.yml's migration reversal reads
(roles/deploy/tasks/migrations.yml), on fixed texts and on what the sample app's real Django
prints against a real PostgreSQL: the state recorded before a deploy, the reversal calls back to
it, and the --plan check that finds v5's irreversible migration (which Django then really
refuses to reverse)."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
from ansible_collections.opsbook.webstack.plugins.filter.django_migrations import FilterModule, django_migrations

import helpers

DB_NAME = "journal_reversal"
DB_USER = "journal_reversal"

LISTING = """\
admin
 [X] 0001_initial
 [X] 0002_logentry_remove_auto_add
articles
 [X] 0001_initial
 [X] 0002_article_summary
 [ ] 0003_backfill_summary
certificates
 [ ] 0001_initial
reports
 [-] 0001_squashed_0004 (4 squashed migrations)
sessions
 (no migrations)
"""

# articles back from 0002 to 0001_initial (v2 rolled back to v1).
BACK_TO_0001 = {
    "reversals": [
        {
            "app": "articles",
            "target": "0001_initial",
            "call": "migrate articles 0001_initial",
            "unapply": ["articles.0002_article_summary"],
        }
    ],
    "problems": [],
}

PLAN_IRREVERSIBLE = """\
Planned operations:
articles.0003_backfill_summary
    Raw Python operation -> IRREVERSIBLE
articles.0002_article_summary
    Undo Add field summary to article
"""


def test_state_is_each_apps_last_applied_migration_or_zero():
    assert django_migrations(LISTING, "state") == {
        "admin": "0002_logentry_remove_auto_add",
        "articles": "0002_article_summary",
        "certificates": "zero",
        "reports": "zero",  # a partly applied squashed migration is not applied
    }


def test_reversals_undo_what_was_applied_after_the_record_newest_first():
    recorded = {"admin": "0002_logentry_remove_auto_add", "articles": "0001_initial"}
    result = django_migrations(LISTING, "reversals", recorded)
    assert result == BACK_TO_0001


def test_an_app_missing_from_the_record_goes_back_to_zero():
    result = django_migrations(LISTING, "reversals", {"articles": "0002_article_summary"})
    assert [(r["app"], r["target"], r["unapply"]) for r in result["reversals"]] == [
        ("admin", "zero", ["admin.0002_logentry_remove_auto_add", "admin.0001_initial"])
    ]


def test_the_recorded_state_reverses_nothing():
    assert django_migrations(LISTING, "reversals", django_migrations(LISTING, "state"))["reversals"] == []


def test_a_recorded_migration_the_code_does_not_know_is_a_problem():
    recorded = {"articles": "0009_gone", "admin": "0002_logentry_remove_auto_add"}
    result = django_migrations(LISTING, "reversals", recorded)
    assert result["reversals"] == []
    assert result["problems"] == [
        "articles.0009_gone (recorded before the deploy) is not a migration of this release's code"
    ]


def test_plan_names_the_irreversible_migration_and_operation():
    assert django_migrations(PLAN_IRREVERSIBLE, "plan") == {
        "migrations": ["articles.0003_backfill_summary", "articles.0002_article_summary"],
        "operations": 2,
        "irreversible": [{"migration": "articles.0003_backfill_summary", "operation": "Raw Python operation"}],
    }


def test_an_empty_plan():
    text = "Planned operations:\n  No planned migration operations.\n"
    assert django_migrations(text, "plan") == {"migrations": [], "operations": 0, "irreversible": []}


def test_an_unknown_read_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match="read must be one of state, reversals, plan, got 'states'"):
        django_migrations(LISTING, "states")
    assert FilterModule().filters() == {"django_migrations": django_migrations}


# ---------------------------------------------------------------- the sample app's real Django


@pytest.fixture(scope="module")
def journal(webapp_venv, webapp_repo, postgres_server, redis_server, tmp_path_factory):
    """manage.py of a checkout (v1, v2, v5) against a database of its own."""
    work = tmp_path_factory.mktemp("reversal")
    password = secrets.token_urlsafe(12)
    postgres_server.create_role(DB_USER, password)
    postgres_server.create_database(DB_NAME, owner=DB_USER)
    checkouts = {tag: webapp_repo.checkout(tag, work / tag) for tag in ("v1", "v2", "v5")}
    (work / "home").mkdir()
    (work / "logs").mkdir()
    env = helpers.minimal_env(
        HOME=str(work / "home"),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(32),
        DJANGO_ALLOWED_HOSTS="localhost",
        DATABASE_HOST=postgres_server.host,
        DATABASE_PORT=str(postgres_server.port),
        DATABASE_NAME=DB_NAME,
        DATABASE_USER=DB_USER,
        DATABASE_PASSWORD=password,
        REDIS_URL=redis_server.url_for(4),
        MEDIA_ROOT=str(work / "media"),
        STATIC_ROOT=str(work / "static"),
        LOG_DIR=str(work / "logs"),
    )

    def manage(tag: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(Path(webapp_venv) / "bin" / "python"), "manage.py", *args],
            cwd=checkouts[tag], env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if ok:
            assert result.returncode == 0, f"manage.py {' '.join(args)} ({tag}):\n{result.stdout}\n{result.stderr}"
        return result

    try:
        yield manage
    finally:
        postgres_server.drop_database(DB_NAME)
        postgres_server.execute(f"DROP ROLE IF EXISTS {DB_USER}")


def columns(postgres_server) -> list[str]:
    rows = postgres_server.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'articles_article'", dbname=DB_NAME
    )
    return sorted(row[0] for row in rows)


def test_a_deploy_of_v2_over_v1_is_reversed_by_the_recorded_state(journal, postgres_server):
    journal("v1", "migrate", "--noinput")
    # deploy.yml, before migrating: the state read with the new release's code.
    recorded = django_migrations(journal("v2", "showmigrations", "--list").stdout, "state")
    assert recorded["articles"] == "0001_initial"
    assert recorded["auth"] != "zero"
    journal("v2", "migrate", "--noinput")
    assert "summary" in columns(postgres_server)

    # rollback.yml: the reversal, checked with --plan, run with v2's code.
    plan = django_migrations(journal("v2", "showmigrations", "--list").stdout, "reversals", recorded)
    assert plan == BACK_TO_0001
    checked = django_migrations(journal("v2", "migrate", "articles", "0001_initial", "--plan").stdout, "plan")
    assert checked["migrations"] == ["articles.0002_article_summary"]
    assert checked["irreversible"] == []
    journal("v2", "migrate", "articles", "0001_initial", "--noinput")
    assert "summary" not in columns(postgres_server)
    after = journal("v2", "showmigrations", "--list").stdout
    assert django_migrations(after, "reversals", recorded)["reversals"] == []
    assert django_migrations(after, "state") == recorded
    # A second run plans nothing.
    again = django_migrations(journal("v2", "migrate", "articles", "0001_initial", "--plan").stdout, "plan")
    assert again == {"migrations": [], "operations": 0, "irreversible": []}


def test_v5s_irreversible_migration_is_found_by_the_plan_before_django_refuses_it(journal, postgres_server):
    journal("v1", "migrate", "--noinput")
    recorded = django_migrations(journal("v5", "showmigrations", "--list").stdout, "state")
    journal("v5", "migrate", "--noinput")
    plan = django_migrations(journal("v5", "showmigrations", "--list").stdout, "reversals", recorded)
    reversal = next(r for r in plan["reversals"] if r["app"] == "articles")
    assert reversal["unapply"] == ["articles.0003_backfill_summary", "articles.0002_article_summary"]
    checked = django_migrations(journal("v5", "migrate", "articles", reversal["target"], "--plan").stdout, "plan")
    irreversible = {"migration": "articles.0003_backfill_summary", "operation": "Raw Python operation"}
    assert checked["irreversible"] == [irreversible]
    # What the refusal spares: Django itself stops at that migration.
    refused = journal("v5", "migrate", "articles", reversal["target"], "--noinput", ok=False)
    assert refused.returncode != 0
    assert "IrreversibleError" in refused.stderr and "0003_backfill_summary" in refused.stderr
    assert "summary" in columns(postgres_server)
