"""app_runtime compose with PostgreSQL in a container (issue 20 item 1, backup/restore): backup, drill, restore.

mc-db1 runs PostgreSQL as the service `db` of the compose project `journal` (app_db_compose_service)
in its own Docker engine, its data in the named volume journal_pgdata, and Redis as a package. Runs
after test_compose.py and test_compose_blue_green.py (file order), on the journal they deployed; the
tests build on each other (rows, a backup, a drill, rows after it, a refused and a real restore).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(PROJECT_DIR / "tests" / "molecule"), str(PROJECT_DIR / "tests" / "lab")]

from molecule_scenario import host, playbook  # noqa: E402

HOSTS = {name: host(name) for name in ("mc-lb1", "mc-app1", "mc-app2", "mc-db1")}
DB = HOSTS["mc-db1"]
BACKUP_DIR = "/var/backups/opsbook/journal"
BACKUP_ID = "mc1"
# The media volume (app_media_volume) as the app's containers see it, and its directory on the host.
MEDIA = "/srv/journal/shared/media"
MEDIA_VOLUME = "/var/lib/docker/volumes/journal_media"
# The articles the backup holds (counted before it, relative: the flow may have made others).
BACKED_UP: dict[str, int] = {}
# The db service's container, as the roles find it: by Compose's labels.
DB_CONTAINER = (
    "$(docker ps -q --filter label=com.docker.compose.project=journal --filter label=com.docker.compose.service=db)"
)


def sql(query: str, db: str = "journal") -> str:
    """psql in the db service's container (as postgres, by peer authentication)."""
    out = DB.run(f"docker exec --user postgres {DB_CONTAINER} psql -XAt -d %s -c %s", db, query)
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def articles() -> int:
    return int(sql("SELECT count(*) FROM articles_article"))


def add_articles(n: int, title: str) -> None:
    # Test constants, not input.
    query = "INSERT INTO articles_article (submission_id, title, author, status, abstract, metadata, created_at) "
    query += f"SELECT gen_random_uuid(), '{title}', 'mc', 'DRAFT', '', '{{}}', now() "  # noqa: S608
    query += f"FROM generate_series(1, {n})"
    sql(query)


def databases() -> set[str]:
    return set(sql("SELECT datname FROM pg_database WHERE NOT datistemplate", db="postgres").split())


def healthy_through_lb() -> bool:
    return HOSTS["mc-lb1"].run("curl -fsS -o /dev/null --max-time 10 http://127.0.0.1/health/").rc == 0


def test_the_database_runs_in_the_db_hosts_engine_and_no_postgresql_package_serves():
    assert DB.service("docker").is_running
    assert not DB.service("postgresql").is_running  # provision installed no PostgreSQL of its own
    out = DB.run(f"docker inspect -f '{{{{.State.Health.Status}}}} {{{{.Config.Image}}}}' {DB_CONTAINER}")
    assert out.rc == 0 and out.stdout.startswith("healthy opsbook/postgres:"), out.stdout + out.stderr


def in_web(name: str, command: str) -> str:
    out = HOSTS[name].run("docker exec journal-web-1 sh -c %s", command)
    assert out.rc == 0, out.stderr
    return out.stdout


def test_backup_streams_the_dump_out_of_the_container_verified():
    assert healthy_through_lb()
    # A media file the app wrote into its volume, owned by an id the host has no user for.
    in_web("mc-app1", f"echo saved > {MEDIA}/before.txt && chown 1234:2345 {MEDIA}/before.txt")
    add_articles(40, "before the backup")
    BACKED_UP["articles"] = articles()
    result, _ = playbook("backup.yml", "-e", f"backup_id={BACKUP_ID}")
    assert result.returncode == 0, result.stdout[-6000:]
    manifest = json.loads(DB.file(f"{BACKUP_DIR}/journal-{BACKUP_ID}.json").content_string)
    assert manifest["verified"] is True
    assert manifest["verification"]["level"] == "content" and manifest["verification"]["during_dump"] is True
    assert manifest["tables"]["public.articles_article"] == articles() == BACKED_UP["articles"] >= 40
    assert manifest["migrations"], "the migration state read in the dump's snapshot"
    assert manifest["server_version"].startswith("15")
    dump = DB.file(f"{BACKUP_DIR}/journal-{BACKUP_ID}.dump")
    assert dump.user == "root" and dump.mode == 0o600 and dump.size == manifest["size"]
    assert DB.file(BACKUP_DIR).user == "root" and DB.file(BACKUP_DIR).mode == 0o700
    assert f"{BACKUP_DIR}/journal-{BACKUP_ID}.dump".endswith(manifest["file"])
    # The media came from the first app host's volume (app_media_volume), not shared/media on the host.
    media = manifest["files"]["media"]
    listing = DB.run(f"tar -tzvf {BACKUP_DIR}/{media['file']}").stdout
    assert "1234/2345" in listing and "_data/before.txt" in listing, listing


def test_the_drill_restores_into_a_scratch_database_in_the_container_and_changes_nothing():
    before = databases()
    result, changed = playbook("restore.yml", "-e", "restore_mode=drill", "-e", f"restore_backup={BACKUP_ID}")
    assert result.returncode == 0, result.stdout[-6000:]
    assert f"Drill: backup {BACKUP_ID} restored into a scratch database" in result.stdout
    assert databases() == before
    assert healthy_through_lb()


def test_a_restore_without_confirmation_changes_nothing():
    add_articles(7, "after the backup")
    before = databases()
    result, _ = playbook("restore.yml", "-e", f"restore_backup={BACKUP_ID}")
    assert result.returncode != 0
    assert "Set restore_confirm=true" in result.stdout
    assert databases() == before and articles() == BACKED_UP["articles"] + 7


def test_a_restore_of_media_into_a_volume_an_app_host_lacks_is_refused():
    before = databases()
    volumes = HOSTS["mc-app1"].run("docker volume ls -q")
    result, _ = playbook("restore.yml", "-e", "restore_confirm=true", "-e", "restore_media=true",
                         "-e", f"restore_backup={BACKUP_ID}", "-e", "app_media_volume=journal_nosuch")  # fmt: skip
    assert result.returncode != 0
    assert (
        "app_media_volume is journal_nosuch, but the Docker engine of mc-app1, mc-app2 has no volume" in result.stdout
    ), result.stdout[-4000:]
    assert databases() == before and HOSTS["mc-app1"].run("docker volume ls -q").stdout == volumes.stdout


def test_a_restore_brings_the_backup_back_and_keeps_the_old_database():
    in_web("mc-app1", f"rm {MEDIA}/before.txt && echo later > {MEDIA}/after.txt")
    result, _ = playbook(
        "restore.yml", "-e", "restore_confirm=true", "-e", "restore_media=true", "-e", f"restore_backup={BACKUP_ID}"
    )
    assert result.returncode == 0, result.stdout[-6000:]
    assert articles() == BACKED_UP["articles"]
    kept = [d for d in databases() if d.startswith("journal_pre_restore_")]
    assert len(kept) == 1, databases()
    assert int(sql("SELECT count(*) FROM articles_article", db=kept[0])) == BACKED_UP["articles"] + 7
    safety = DB.run(f"ls {BACKUP_DIR}/pre-restore/").stdout.split()
    assert len(safety) == 1 and safety[0].startswith("journal-"), safety
    # The app's containers were stopped for the swap and started again through Compose, healthy.
    assert "RESTORE | Stop the app's containers" in result.stdout
    web = HOSTS["mc-app1"].run("docker inspect -f '{{.State.Status}} {{.State.Health.Status}}' journal-web-1")
    assert web.stdout.strip() == "running healthy", web.stdout + web.stderr
    assert healthy_through_lb()
    # The media volume holds the backup's files again, on every app host, their numeric owners kept; the
    # containers, started after the swap, see them; the content it had is kept beside it.
    for name in ("mc-app1", "mc-app2"):
        assert in_web(name, f"cat {MEDIA}/before.txt; ls {MEDIA}").split() == ["saved", "before.txt"], name
        restored = HOSTS[name].file(f"{MEDIA_VOLUME}/_data/before.txt")
        assert (restored.uid, restored.gid) == (1234, 2345), name
    [kept] = HOSTS["mc-app1"].run(f"ls -d {MEDIA_VOLUME}/_data.pre-restore-*").stdout.split()
    assert HOSTS["mc-app1"].file(f"{kept}/after.txt").content_string == "later\n"


def test_maintenance_reports_the_container_database_unread_and_refuses_actions_on_it(tmp_path):
    """maintenance.yml does not reach PostgreSQL in a container yet: a report says so (unknown, not critical) and
    goes on with the other hosts' checks; an asked-for VACUUM is refused before anything changes."""
    result, _ = playbook("maintenance.yml", "-e", f"maintenance_report_dir={tmp_path}")
    assert result.returncode == 0, result.stdout[-4000:]
    [path] = sorted(tmp_path.glob("maintenance-*.json"))
    findings = json.loads(path.read_text())["findings"]
    [db] = [f for f in findings if f["check"] == "database"]
    assert db["level"] == "unknown" and db["detail"].startswith("not read: PostgreSQL runs in the container"), db
    assert {f["host"] for f in findings} >= {"mc-app1", "mc-db1"}, findings
    vacuum = tmp_path / "vacuum"
    result, _ = playbook("maintenance.yml", "-e", f"maintenance_report_dir={vacuum}", "-e", "maintenance_vacuum=true")
    assert result.returncode != 0
    assert "app_db_compose_service is db: PostgreSQL runs in a container" in result.stdout, result.stdout[-4000:]
    assert "Nothing was changed." in result.stdout
