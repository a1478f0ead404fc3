"""Issue 23 item 4 on the lab: rollback.yml reverses the Django migrations of the release it rolls
back, only when asked and confirmed, checked with --plan first. v2 deployed over v1 (its
migration adds articles_article.summary) is rolled back with the reversal: the column is gone,
django_migrations is back at the state recorded before the deploy, v1 serves through lb1, and a
second run changes nothing. Without the confirmation, and in check mode, nothing is reversed.
v5 (an irreversible data migration on top of v2) is refused before any change, naming the
migration and the pre-deploy backup; a code-only rollback then names what stays applied.

Reuses the demo's lab (v1 live); two deploys, the rest are rollbacks."""

from __future__ import annotations

import json
import urllib.request

import pytest
from lab_helpers import PORT, ansible_playbook, lab_exec

pytestmark = pytest.mark.lab

HOSTS = ("app1", "app2")
RELEASES = "/srv/journal/releases"
LOCK = "/var/lib/opsbook/journal-deploy.lock"
CONFIRM = ("-e", "rollback_migrations=reverse", "-e", "rollback_confirm=journal")


def psql(sql: str) -> list[str]:
    argv = ["runuser", "-u", "postgres", "--", "psql", "-d", "journal", "-At", "-c", sql]
    return [line for line in lab_exec("db1", *argv).stdout.splitlines() if line]


def applied() -> list[str]:
    return psql("SELECT name FROM django_migrations WHERE app = 'articles' ORDER BY id")


def columns() -> set[str]:
    return set(psql("SELECT column_name FROM information_schema.columns WHERE table_name = 'articles_article'"))


def live(host: str = "app1") -> str:
    return lab_exec(host, "readlink", "/srv/journal/current").stdout.strip().rsplit("/", 1)[-1]


def releases() -> list[str]:
    return sorted(lab_exec("app1", "ls", RELEASES).stdout.split())


def served() -> set[str]:
    seen = set()
    for _ in range(4):
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/version/", timeout=10) as response:
            seen.add(json.load(response)["version"])
    return seen


def lock_held() -> bool:
    return lab_exec("app1", "test", "-e", LOCK, check=False).returncode == 0


def manage_in(release: str, *args: str) -> None:
    lab_exec(
        "app1",
        "systemd-run", "--pipe", "--wait", "--collect", "--quiet", "--uid=journal", "--gid=journal",
        "--property=EnvironmentFile=/srv/journal/shared/env", f"--property=WorkingDirectory={RELEASES}/{release}",
        f"{RELEASES}/{release}/venv/bin/python", "manage.py", *args,
    )  # fmt: skip


def unchanged_since(state: dict) -> None:
    assert {host: live(host) for host in HOSTS} == state["live"]
    assert applied() == state["applied"]
    assert columns() == state["columns"]
    assert not lock_held()


def state() -> dict:
    return {"live": {host: live(host) for host in HOSTS}, "applied": applied(), "columns": columns()}


def deploy(ref: str) -> str:
    result, _ = ansible_playbook("deploy.yml", "-e", f"deploy_ref={ref}")
    assert result.returncode == 0, result.stdout[-4000:]
    release = live()
    assert release.endswith(f"-{ref}") and served() == {release}
    return release


@pytest.fixture(scope="module")
def v1_at_0001(lab) -> str:
    """v1 served, the articles app at 0001_initial: what the demo leaves, whatever ran before."""
    if "0003_backfill_summary" in applied():
        # v5's 0003 only filled summaries: forget it (a rerun of this module), like --fake.
        psql("DELETE FROM django_migrations WHERE app = 'articles' AND name = '0003_backfill_summary'")
    if not live().endswith("-v1"):
        v1 = [r for r in releases() if r.endswith("-v1")]
        if v1:
            result, _ = ansible_playbook("rollback.yml", "-e", f"rollback_release={v1[-1]}")
            assert result.returncode == 0, result.stdout[-4000:]
        else:
            deploy("v1")
    if "0002_article_summary" in applied():
        newer = [r for r in releases() if r.endswith(("-v2", "-v5"))]
        assert newer, f"articles.0002 is applied and no release has its file to reverse it: {releases()}"
        manage_in(newer[-1], "migrate", "articles", "0001_initial", "--noinput")
    assert applied() == ["0001_initial"] and "summary" not in columns()
    return live()


@pytest.fixture(scope="module")
def v2_over_v1(v1_at_0001) -> tuple[str, str]:
    v2 = deploy("v2")
    assert applied() == ["0001_initial", "0002_article_summary"] and "summary" in columns()
    record = json.loads(lab_exec("app1", "cat", f"{RELEASES}/{v2}/.opsbook-migrations.json").stdout)
    assert record["release"] == v2 and record["replaces"] == v1_at_0001
    assert record["state"]["articles"] == "0001_initial" and record["state"]["auth"] != "zero"
    return v1_at_0001, v2


def test_without_the_confirmation_nothing_is_reversed_or_switched(v2_over_v1):
    before = state()
    result, _ = ansible_playbook(
        "rollback.yml", "-e", f"rollback_release={v2_over_v1[0]}", "-e", "rollback_migrations=reverse"
    )
    assert result.returncode != 0
    assert "set rollback_confirm=journal (deploy_migrations_confirm) to confirm. Nothing was changed." in result.stdout
    unchanged_since(before)
    bad, _ = ansible_playbook("rollback.yml", "-e", "rollback_migrations=undo")
    assert bad.returncode != 0
    assert "rollback_migrations must be keep" in bad.stdout and "got 'undo'. Nothing was changed." in bad.stdout
    unchanged_since(before)


def test_check_mode_reports_the_reversal_and_changes_nothing(v2_over_v1):
    _v1, v2 = v2_over_v1
    before = state()
    result, recap = ansible_playbook("rollback.yml", "--check", "-e", f"rollback_release={v2_over_v1[0]}", *CONFIRM)
    assert result.returncode == 0, result.stdout[-4000:]
    assert (
        f"Would reverse, with the code of {v2} before the switch: manage.py migrate articles 0001_initial "
        "(unapplies articles.0002_article_summary)." in " ".join(result.stdout.split())
    )
    assert recap["app1"] > 0
    unchanged_since(before)


def test_reversal_drops_the_column_before_v1_serves_and_a_rerun_changes_nothing(v2_over_v1):
    v1, v2 = v2_over_v1
    result, _ = ansible_playbook("rollback.yml", "-e", f"rollback_release={v1}", *CONFIRM)
    assert result.returncode == 0, result.stdout[-4000:]
    out = " ".join(result.stdout.split())
    assert "manage.py migrate articles 0001_initial" in out
    # Reversed with v2's code, under the lock, before the first switch.
    assert out.index("Reverse the migrations with the code of") < out.index("PLAY [Switch to the release]")
    assert applied() == ["0001_initial"] and "summary" not in columns()
    assert {host: live(host) for host in HOSTS} == {"app1": v1, "app2": v1}
    assert served() == {v1}
    assert not lock_held()
    again, recap = ansible_playbook("rollback.yml", "-e", f"rollback_release={v1}", *CONFIRM)
    assert again.returncode == 0, again.stdout[-4000:]
    assert all(changed == 0 for changed in recap.values()), recap


def test_an_irreversible_migration_is_refused_before_any_change(v2_over_v1):
    v1, _v2 = v2_over_v1
    v5 = deploy("v5")
    assert applied() == ["0001_initial", "0002_article_summary", "0003_backfill_summary"]
    before = state()
    result, _ = ansible_playbook("rollback.yml", "-e", f"rollback_release={v1}", *CONFIRM)
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert "refused, articles.0003_backfill_summary cannot be reversed (Raw Python operation: IRREVERSIBLE" in out
    assert f"restore_backup={v5}-predeploy" in out and "playbooks/restore.yml" in out
    unchanged_since(before)
    # Without rollback_migrations the code goes back alone, naming what stays applied.
    kept, _ = ansible_playbook("rollback.yml", "-e", f"rollback_release={v1}")
    assert kept.returncode == 0, kept.stdout[-4000:]
    assert (
        "These migrations stay applied (applied by "
        f"{v5}; {v1} runs on that schema): articles.0003_backfill_summary, articles.0002_article_summary."
        in " ".join(kept.stdout.split())
    )
    assert served() == {v1} and applied() == before["applied"]
