"""restore.yml on the lab (two app hosts): confirmation, check mode, unknown backup, swap with media, releases.

Corrupted copies, the drill and a failure before the swap are proven by the Molecule
scenario operations (molecule/operations/tests/test_backup_restore.py), not repeated here.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from lab_helpers import LAB, PORT, ansible_playbook, lab_exec, seed_demo

BACKUP_DIR = "/var/backups/opsbook/journal"
MEDIA = "/srv/journal/shared/media"
pytestmark = pytest.mark.lab


def psql(sql: str, db: str = "journal") -> str:
    return lab_exec("db1", "psql", "-d", db, "-tAc", sql, user="postgres").stdout.strip()


def databases() -> set[str]:
    return set(psql("SELECT datname FROM pg_database WHERE NOT datistemplate", db="postgres").split())


def main_pids() -> dict[str, str]:
    """The web and worker processes' PIDs: a run that stops or restarts them changes these."""
    out = {}
    for host in ("app1", "app2"):
        for unit in ("journal.service", "journal-worker.service"):
            out[f"{host}/{unit}"] = lab_exec(host, "systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip()
    return out


def get(path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def healthy_through_lb() -> dict:
    status, body = get("/health/")
    assert status == 200, body
    data = json.loads(body)
    assert data["status"] == "ok" and data["components"]["database"] == "ok"
    return data


def articles() -> int:
    return int(psql("SELECT count(*) FROM articles_article"))


def restore(*extra: str):
    return ansible_playbook("restore.yml", *extra)


@pytest.fixture(scope="module")
def backup_rs1(lab):
    """Backup rs1 of known data and media, then the live data and media moved on from it."""
    seed_demo()
    lab_exec("app1", "sh", "-c", f"echo before > {MEDIA}/in-backup.txt && chown journal: {MEDIA}/in-backup.txt")
    result, _ = ansible_playbook("backup.yml", "-e", "backup_id=rs1")
    assert result.returncode == 0, result.stdout[-4000:]
    count = articles()
    title = psql("SELECT title FROM articles_article ORDER BY id LIMIT 1")
    # After the backup: rows deleted and changed, media replaced.
    psql("DELETE FROM articles_article WHERE id IN (SELECT id FROM articles_article ORDER BY id DESC LIMIT 3)")
    first = "(SELECT min(id) FROM articles_article)"
    psql(f"UPDATE articles_article SET title = 'changed after the backup' WHERE id = {first}")
    lab_exec("app1", "sh", "-c", f"rm {MEDIA}/in-backup.txt && echo after > {MEDIA}/after-backup.txt")
    return {"count": count, "title": title}


def test_without_confirmation_nothing_changes(backup_rs1):
    before = (databases(), main_pids(), articles())
    result, _ = restore("-e", "restore_backup=rs1")
    assert result.returncode != 0
    assert "Set restore_confirm=true" in result.stdout and "Nothing was changed" in result.stdout
    assert (databases(), main_pids(), articles()) == before


def test_check_mode_says_what_it_would_do_and_changes_nothing(backup_rs1):
    before = (databases(), main_pids(), articles())
    result, recap = restore("--check", "-e", "restore_backup=rs1", "-e", "restore_confirm=true")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "would restore" in result.stdout and "journal-rs1.dump" in result.stdout
    assert (databases(), main_pids(), articles()) == before


def test_an_unknown_backup_is_refused_listing_the_ones_there_are(backup_rs1):
    result, _ = restore("-e", "restore_backup=nope", "-e", "restore_confirm=true")
    assert result.returncode != 0
    assert "No backup 'nope'" in result.stdout and "rs1" in result.stdout


def test_a_plain_dump_that_switches_databases_is_refused(backup_rs1):
    """psql would follow pg_dump --create's \\connect into the live database: refused before any change."""
    path = f"{BACKUP_DIR}/create.sql"
    lab_exec("db1", "pg_dump", "--create", "-d", "journal", "-f", path, user="postgres")
    before = (databases(), main_pids(), articles())
    try:
        result, _ = restore("-e", f"restore_backup={path}", "-e", "restore_confirm=true")
    finally:
        lab_exec("db1", "rm", "-f", path)
    assert result.returncode != 0
    assert "is plain SQL with" in result.stdout and "pg_dump --create" in result.stdout
    assert (databases(), main_pids(), articles()) == before


class ActivitySampler:
    """pg_stat_activity on db1 every 0.1 s while a restore runs: per sample, whether a pg_dump
    reads journal (the safety dump), whether a journal_restore_* database exists (restored,
    counted, not yet swapped in), and the app hosts' connections (TCP clients) to journal."""

    STOP = "/tmp/.stop-opsbook-sampler"
    SQL = (
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = 'journal' AND application_name = 'pg_dump'),"
        " (SELECT count(*) FROM pg_database WHERE datname LIKE 'journal\\_restore\\_%'),"
        " (SELECT coalesce(string_agg(host(client_addr) || ':' || pid, ' '), '') FROM pg_stat_activity"
        "  WHERE client_addr IS NOT NULL AND (datname = 'journal' OR datname LIKE 'journal\\_%restore\\_%'))"
    )

    def __enter__(self):
        lab_exec("db1", "rm", "-f", self.STOP)
        loop = f'while [ ! -e {self.STOP} ]; do psql -XtAqc "$1"; sleep 0.1; done; rm -f {self.STOP}'
        self.proc = subprocess.Popen(
            ["docker", "exec", "--user", "postgres", f"{LAB}-db1", "sh", "-c", loop, "sample", self.SQL],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        return self

    def __exit__(self, *exc):
        lab_exec("db1", "touch", self.STOP, user="postgres")
        out, _ = self.proc.communicate(timeout=60)
        self.samples = [line.split("|") for line in out.splitlines() if line.count("|") == 2]

    def during_the_swap(self) -> list[list[str]]:
        """The samples from the safety dump (or the new database) until the new database is swapped in."""
        marks = [i for i, (dumping, restoring, _) in enumerate(self.samples) if dumping != "0" or restoring != "0"]
        return self.samples[marks[0] : marks[-1] + 1] if marks else []


def test_restore_swaps_in_the_backup_with_media_and_keeps_the_old_database(backup_rs1):
    seen: list[int] = []
    probes: list[int] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            status, body = get("/version/")
            seen.append(status if status != 503 or "Down for maintenance" in body else -503)
            # What a load balancer's health check does: /health/ reaches the app during maintenance.
            probes.append(get("/health/")[0])
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ActivitySampler() as activity:
            result, _ = restore("-e", "restore_backup=rs1", "-e", "restore_confirm=true", "-e", "restore_media=true")
    finally:
        stop.set()
        watcher.join()
    assert result.returncode == 0, result.stdout[-6000:]
    # Issue 19 item 5: while the database is dumped, restored and swapped, no app process holds
    # a connection to it, though health probes kept coming (the web socket is stopped too, so
    # they cannot start Gunicorn again).
    window = activity.during_the_swap()
    assert window and any(restoring != "0" for _, restoring, _ in window), activity.samples
    assert [clients for _, _, clients in window if clients] == [], (window, probes)
    assert articles() == backup_rs1["count"]
    assert psql("SELECT title FROM articles_article ORDER BY id LIMIT 1") == backup_rs1["title"]
    old = sorted(d for d in databases() if d.startswith("journal_pre_restore_"))[-1]
    assert int(psql("SELECT count(*) FROM articles_article", db=old)) == backup_rs1["count"] - 3
    assert not [d for d in databases() if d.startswith("journal_restore_")]
    # Users saw the maintenance page (never a bare error), then the app again.
    assert 503 in seen and -503 not in seen and seen[-1] == 200
    healthy_through_lb()
    for host in ("app1", "app2"):
        files = lab_exec(host, "ls", MEDIA).stdout.split()
        if host == "app1":
            assert "in-backup.txt" in files and "after-backup.txt" not in files
    kept = lab_exec("app1", "sh", "-c", f"ls -d {MEDIA}.pre-restore-*/after-backup.txt").stdout
    assert "after-backup.txt" in kept
    # The safety dump of the database as it was just before: verified, holding the changed rows.
    safety = f"{BACKUP_DIR}/pre-restore/{old.replace('journal_pre_restore_', 'journal-')}.dump"
    assert f'"safety_dump": "{safety}"' in result.stdout  # set_stats
    listing = lab_exec(
        "db1", "pg_restore", "--data-only", "--table=articles_article", "-f", "-", safety, user="postgres"
    )
    assert "changed after the backup" in listing.stdout


def test_a_backup_from_another_release_warns_fails_or_switches(backup_rs1):
    deployed, _ = ansible_playbook("deploy.yml", "-e", "deploy_ref=v2")
    assert deployed.returncode == 0, deployed.stdout[-4000:]
    v2 = healthy_through_lb()["version"]
    assert v2.endswith("-v2")
    refused, _ = restore(
        "-e", "restore_backup=rs1", "-e", "restore_confirm=true", "-e", "restore_release_mismatch=fail"
    )
    assert refused.returncode != 0
    assert "restore_release_mismatch=fail stops here" in refused.stdout
    assert healthy_through_lb()["version"] == v2
    result, _ = restore(
        "-e", "restore_backup=rs1", "-e", "restore_confirm=true", "-e", "restore_release_mismatch=switch"
    )
    assert result.returncode == 0, result.stdout[-6000:]
    assert "WARNING: backup rs1 was taken under release" in result.stdout
    assert healthy_through_lb()["version"].endswith("-v1")
    assert articles() == backup_rs1["count"]
