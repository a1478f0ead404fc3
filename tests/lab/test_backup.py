"""backup.yml on the lab: verified, atomically published with the release and migrations, locked, clean on failure.

Rotation (check mode listing, then deletion) and corrupted copies (refused by verification
and by restore) are proven by the Molecule scenario backup_restore, not repeated here.
"""

from __future__ import annotations

import json

import pytest
from lab_helpers import ansible_playbook, lab_exec, seed_demo

BACKUP_DIR = "/var/backups/opsbook/journal"
pytestmark = pytest.mark.lab


def psql(sql: str) -> str:
    return lab_exec("db1", "psql", "-d", "journal", "-tAc", sql, user="postgres").stdout.strip()


def backup_files() -> list[str]:
    return sorted(lab_exec("db1", "ls", "-A", BACKUP_DIR).stdout.split())


def manifest(name: str) -> dict:
    return json.loads(lab_exec("db1", "cat", f"{BACKUP_DIR}/{name}").stdout)


@pytest.fixture(scope="module")
def seeded(lab):
    lab_exec("db1", "rm", "-rf", BACKUP_DIR)
    seed_demo()
    return int(psql("SELECT count(*) FROM articles_article"))


def test_backup_is_verified_published_with_its_manifest(seeded):
    result, recap = ansible_playbook("backup.yml", "-e", "backup_id=t1")
    assert result.returncode == 0, result.stdout[-5000:]
    files = backup_files()
    assert "journal-t1.dump" in files and "journal-t1.json" in files
    assert not [f for f in files if f.startswith(".tmp-")]
    data = manifest("journal-t1.json")
    assert data["verified"] is True and data["verification"]["level"] == "content"
    assert data["tables"]["public.articles_article"] == seeded
    assert data["release"].endswith("-v1")
    assert any(m["app"] == "articles" for m in data["migrations"])
    mode = lab_exec("db1", "stat", "-c", "%a %U", f"{BACKUP_DIR}/journal-t1.dump").stdout.split()
    assert mode == ["600", "postgres"]
    assert lab_exec("db1", "readlink", f"{BACKUP_DIR}/latest").stdout.strip() == "journal-t1.dump"
    assert lab_exec("db1", "readlink", f"{BACKUP_DIR}/latest.json").stdout.strip() == "journal-t1.json"
    assert '"backup_id": "t1"' in result.stdout  # set_stats, as CI and AWX read it
    assert '"backup_verified": "content"' in result.stdout
    # Verified while pg_dump wrote it (custom format, level content): no second pass.
    assert data["verification"]["during_dump"] is True and data["verification"]["pg_restore_read"] is True
    assert data["verification"]["rows"] == sum(data["tables"].values())
    assert lab_exec("db1", "test", "-e", f"{BACKUP_DIR}/.lock", check=False).returncode == 1  # released


def test_other_levels_are_verified_by_pg_dump_verify_before_publishing(seeded):
    result, _ = ansible_playbook("backup.yml", "-e", "backup_id=t-read", "-e", "backup_verify_level=read")
    assert result.returncode == 0, result.stdout[-5000:]
    data = manifest("journal-t-read.json")
    assert data["verified"] is True and data["verification"]["level"] == "read"
    assert "during_dump" not in data["verification"] and data["verification"]["duration"]["read"] >= 0
    assert '"backup_verified": "read"' in result.stdout


def test_a_failed_backup_leaves_nothing_and_rotates_nothing(seeded):
    before = backup_files()
    result, _ = ansible_playbook(
        "backup.yml",
        "-e",
        "backup_id=t-fail",
        "-e",
        "backup_database=no_such_db",
        "-e",
        '{"backup_retention": {"keep_last": 1}}',
    )
    assert result.returncode != 0
    assert "Backup t-fail failed at" in result.stdout and "no backup was rotated" in result.stdout
    assert backup_files() == before


def test_a_held_lock_is_refused_naming_its_holder(seeded):
    holder = {"user": "someone", "controller": "elsewhere", "since": "2026-11-29T03:00:00Z", "release": "r7",
              "action": "backup x of journal", "token": "theirs"}  # fmt: skip
    lab_exec("db1", "mkdir", f"{BACKUP_DIR}/.lock")
    lab_exec("db1", "sh", "-c", f"echo '{json.dumps(holder)}' > {BACKUP_DIR}/.lock/holder.json")
    # The holder's dump in progress, under the id this run asks for too.
    lab_exec("db1", "touch", f"{BACKUP_DIR}/.tmp-t-locked.dump")
    try:
        result, _ = ansible_playbook("backup.yml", "-e", "backup_id=t-locked")
        # The held lock and the holder's files are left as they were: they are not this run's.
        assert json.loads(lab_exec("db1", "cat", f"{BACKUP_DIR}/.lock/holder.json").stdout) == holder
        assert ".tmp-t-locked.dump" in backup_files()
    finally:
        lab_exec("db1", "rm", "-rf", f"{BACKUP_DIR}/.lock", f"{BACKUP_DIR}/.tmp-t-locked.dump")
    assert result.returncode != 0
    assert "someone@elsewhere since 2026-11-29T03:00:00Z (release r7, backup x of journal)" in result.stdout
    assert "journal-t-locked.dump" not in backup_files()


def test_a_bad_retention_policy_fails_before_the_dump(seeded):
    before = backup_files()
    result, _ = ansible_playbook(
        "backup.yml", "-e", "backup_id=t-policy", "-e", '{"backup_retention": {"keep_last": -1}}'
    )
    assert result.returncode != 0
    assert "backup_retention ({'keep_last': -1}) must map keep_last" in result.stdout, result.stdout[-5000:]
    assert "whole numbers, 0 or more" in result.stdout
    assert "BACKUP | Dump the database" not in result.stdout  # refused before anything changed
    assert backup_files() == before
