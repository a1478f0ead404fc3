"""Point-in-time recovery with pgBackRest on the lab (issue 23 item 1): db1's WAL archived to a
repository on lb1 (the backup store) over SSH, a base backup, rows written, the time noted, more
rows, then restore.yml to the noted time into a scratch cluster: its rows are those of the noted
time. A drill to the end of the archive reports RPO and RTO and removes its scratch cluster;
health.yml judges pgbackrest check and verify. Bad input is refused before anything changes.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from lab_helpers import ansible_playbook, lab_exec

pytestmark = pytest.mark.lab
SCRATCH = "/var/lib/postgresql/pitr/journal"


def psql(sql: str, port: int = 5432, db: str = "journal") -> str:
    return lab_exec("db1", "psql", "-XAt", "-p", str(port), "-d", db, "-c", sql, user="postgres").stdout.strip()


def test_bad_input_is_refused_before_anything_changes(lab):
    result, _ = ansible_playbook("restore.yml", "-e", "restore_target_time=yesterday")
    assert result.returncode != 0
    assert "restore_target_time ('yesterday') must be a date and time with its time zone" in result.stdout
    assert "Nothing was changed" in result.stdout

    result, _ = ansible_playbook("restore.yml", "-e", "restore_target_time=latest", "-e", "restore_pitr_stanza=nosuch")
    assert result.returncode != 0
    assert "restore_target_time needs point-in-time recovery, which is not configured on db1" in result.stdout
    assert lab_exec("db1", "test", "-e", "/var/lib/postgresql/pitr/nosuch", check=False).returncode != 0


def test_restore_to_a_noted_time_into_a_scratch_cluster(lab, tmp_path):
    backup, recap = ansible_playbook("backup_pitr.yml", "-e", "backup_pitr=true", "-e", "backup_pitr_type=full")
    assert backup.returncode == 0, backup.stdout[-4000:]
    conf = lab_exec("db1", "stat", "-c", "%a %U", "/etc/pgbackrest/pgbackrest.conf").stdout.split()
    assert conf == ["640", "postgres"]
    assert psql("show archive_mode") == "on"

    psql("drop table if exists pitr_probe; create table pitr_probe (id int)")
    psql("insert into pitr_probe select generate_series(1, 100)")
    # ISO with a T: one word for -e key=value.
    noted = psql("""select to_char(clock_timestamp() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US') || 'Z'""")
    live_articles = psql("select count(*) from articles_article")
    time.sleep(1.5)
    psql("insert into pitr_probe select generate_series(101, 150)")
    # The WAL holding both inserts archived (check switches the segment and waits for it).
    lab_exec("db1", "pgbackrest", "--stanza=journal", "check", user="postgres")

    # A drill restores into a scratch cluster as a restore does (same tasks), then removes it: one
    # restore in the shared lab's budget. Its row counts are in set_stats.
    drill, _ = ansible_playbook("restore.yml", "-e", f"restore_target_time={noted}", "-e", "restore_mode=drill")
    assert drill.returncode == 0, drill.stdout[-4000:]
    assert '"public.pitr_probe": "100"' in drill.stdout  # the rows of the noted time, not the 50 after it
    assert f'"public.articles_article": "{live_articles}"' in drill.stdout
    assert psql("select count(*) from pitr_probe") == "150"  # the live cluster untouched
    summary = re.search(r"Drill of stanza journal to \S+: (\d+) tables, (\d+) rows; RTO ([0-9.]+) s .*? RPO (\d+) s",
                        drill.stdout, re.DOTALL)  # fmt: skip
    assert summary, drill.stdout[-3000:]
    assert float(summary.group(3)) > 0
    assert lab_exec("db1", "test", "-e", SCRATCH, check=False).returncode != 0
    assert lab_exec("db1", "systemctl", "is-active", "opsbook-pitr-journal", check=False).stdout.strip() != "active"

    health, _ = ansible_playbook(
        "health.yml", "--limit", "db1:localhost", "-e", "backup_pitr=true", env={"OPSBOOK_REPORT_DIR": str(tmp_path)}
    )
    [report] = tmp_path.glob("health-*.json")
    findings = {
        f["check"]: f
        for f in json.loads(report.read_text())["findings"]
        if f["check"].startswith(("pgbackrest", "WAL"))
    }
    assert set(findings) == {"pgbackrest check", "pgbackrest verify", "pgbackrest backup age", "WAL archiving"}
    assert {name: f["level"] for name, f in findings.items()} == dict.fromkeys(findings, "ok"), findings
    psql("drop table pitr_probe")
