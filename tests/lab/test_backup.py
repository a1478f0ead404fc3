"""backup.yml on the lab: verified, atomically published, rotated, locked, and clean on failure."""

from __future__ import annotations

import json

import pytest
from lab_helpers import ansible_adhoc, ansible_playbook, lab_exec, seed_demo

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
    assert '"backup_id": "t1"' in result.stdout  # set_stats, as CI and AWX read it


def test_a_corrupted_copy_is_refused_by_verification(seeded):
    ansible_playbook("backup.yml", "-e", "backup_id=t0")
    lab_exec("db1", "cp", f"{BACKUP_DIR}/journal-t0.dump", "/tmp/corrupt.dump")
    size = int(lab_exec("db1", "stat", "-c", "%s", "/tmp/corrupt.dump").stdout)
    lab_exec("db1", "truncate", "-s", str(size // 2), "/tmp/corrupt.dump")
    lab_exec("db1", "chown", "postgres:postgres", "/tmp/corrupt.dump")
    verify = ansible_adhoc(
        "db1",
        "opsbook.webstack.pg_dump_verify",
        f"path=/tmp/corrupt.dump manifest={BACKUP_DIR}/journal-t0.json level=content",
    )
    assert verify.returncode != 0
    assert "truncated" in verify.stdout


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
    lab_exec("db1", "mkdir", f"{BACKUP_DIR}/.lock")
    lab_exec("db1", "sh", "-c", f"echo 'backup x started by someone' > {BACKUP_DIR}/.lock/holder")
    try:
        result, _ = ansible_playbook("backup.yml", "-e", "backup_id=t-locked")
    finally:
        lab_exec("db1", "rm", "-rf", f"{BACKUP_DIR}/.lock")
    assert result.returncode != 0
    assert "backup x started by someone" in result.stdout
    assert "journal-t-locked.dump" not in backup_files()


def test_rotation_check_mode_lists_and_a_real_run_deletes(seeded):
    result, _ = ansible_playbook("backup.yml", "-e", "backup_id=t2")
    assert result.returncode == 0, result.stdout[-5000:]
    keep_one = '{"backup_retention": {"keep_last": 1}}'
    check, recap = ansible_playbook("backup.yml", "--check", "-e", "backup_id=t3", "-e", keep_one)
    assert check.returncode == 0, check.stdout[-5000:]
    assert "journal-t1.json" in check.stdout  # listed as what would go
    assert "journal-t1.dump" in backup_files()  # ...and still there
    result, _ = ansible_playbook("backup.yml", "-e", "backup_id=t3", "-e", keep_one)
    assert result.returncode == 0, result.stdout[-5000:]
    files = backup_files()
    assert "journal-t3.dump" in files
    assert "journal-t1.dump" not in files and "journal-t2.dump" not in files
    assert "journal-t1.json" not in files and "journal-t2.json" not in files
