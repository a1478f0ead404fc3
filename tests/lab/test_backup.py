"""backup.yml on the lab: verified, atomically published with the release and migrations, locked, clean on failure.

Rotation (check mode listing, then deletion) and corrupted copies (refused by verification
and by restore) are proven by the Molecule scenario operations, not repeated here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from lab_helpers import LAB, ansible_playbook, lab_exec, seed_demo

BACKUP_DIR = "/var/backups/opsbook/journal"
HOSTS = ("lb1", "app1", "app2", "db1")
ARCHIVE_TASK = "TASK [opsbook.webstack.backup : BACKUP | Archive the files on the host]"
DUMP_TASK = "TASK [opsbook.webstack.backup : BACKUP | Take the backup lock and dump the database with row counts"
pytestmark = pytest.mark.lab


def psql(sql: str) -> str:
    return lab_exec("db1", "psql", "-d", "journal", "-tAc", sql, user="postgres").stdout.strip()


def backup_files() -> list[str]:
    return sorted(lab_exec("db1", "ls", "-A", BACKUP_DIR).stdout.split())


def manifest(name: str) -> dict:
    return json.loads(lab_exec("db1", "cat", f"{BACKUP_DIR}/{name}").stdout)


class TmpWatch:
    """Watch /tmp on app1 while a backup runs: the type, mode and path of every opsbook archive
    and directory seen (sampled every 50 ms), so a test sees the archive while it exists."""

    STOP = "/tmp/.stop-opsbook-watch"
    LOOP = (
        f"rm -f {STOP}; while [ ! -e {STOP} ]; do "
        "find /tmp -mindepth 1 \\( -name '*opsbook-backup*' -o -path '*opsbook-backup*/*' \\) -printf '%y %m %p\\n'; "
        f"sleep 0.05; done; rm -f {STOP}"
    )

    def __enter__(self):
        self.proc = subprocess.Popen(
            ["docker", "exec", f"{LAB}-app1", "sh", "-c", self.LOOP], stdout=subprocess.PIPE, text=True
        )
        return self

    def __exit__(self, *exc):
        lab_exec("app1", "touch", self.STOP)
        out, _ = self.proc.communicate(timeout=60)
        self.seen = sorted(set(out.splitlines()))


def leftovers(controller_tmp: Path) -> dict[str, list[str]]:
    """Archives or their directories left in /tmp on the hosts, or in the controller's TMPDIR."""
    found = {
        host: lab_exec(host, "find", "/tmp", "-mindepth", "1", "-name", "*opsbook-backup*").stdout.split()
        for host in HOSTS
    }
    found["controller"] = [p.name for p in controller_tmp.iterdir() if "opsbook" in p.name or ".tar" in p.name]
    return {where: names for where, names in found.items() if names}


@pytest.fixture(scope="module")
def seeded(lab):
    lab_exec("db1", "rm", "-rf", BACKUP_DIR)
    seed_demo()
    return int(psql("SELECT count(*) FROM articles_article"))


@pytest.fixture(scope="module")
def first_backup(seeded, tmp_path_factory):
    """Backup t1, its controller TMPDIR a fresh directory, /tmp on app1 watched while it runs."""
    controller_tmp = tmp_path_factory.mktemp("controller-tmp")
    with TmpWatch() as watch:
        result, _ = ansible_playbook("backup.yml", "-e", "backup_id=t1", env={"TMPDIR": str(controller_tmp)})
    result.watch, result.controller_tmp = watch, controller_tmp
    return result


def test_backup_is_verified_published_with_its_manifest(seeded, first_backup):
    result, watch = first_backup, first_backup.watch
    assert result.returncode == 0, result.stdout[-5000:]
    # Issue 19 item 4: the configuration archive (env file with passwords) and the media archive
    # exist on the host only 0600 inside a private 0700 directory, and nothing is left behind on
    # the hosts or in the controller's temporary directory.
    files = [line.split() for line in watch.seen if line.startswith("f ")]
    dirs = [line.split() for line in watch.seen if line.startswith("d ")]
    assert any(path.endswith(".tar.gz") for _, _, path in files), watch.seen  # seen while it existed
    assert {mode for _, mode, _ in files} == {"600"}, watch.seen
    assert dirs and {mode for _, mode, _ in dirs} == {"700"}, watch.seen
    assert all(any(path.startswith(d + "/") for _, _, d in dirs) for _, _, path in files), watch.seen
    assert leftovers(result.controller_tmp) == {}
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
    # Made as postgres, as a real holder (the backup modules run as postgres) makes it.
    lab_exec("db1", "install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0700", BACKUP_DIR)
    lab_exec("db1", "mkdir", f"{BACKUP_DIR}/.lock", user="postgres")
    lab_exec("db1", "sh", "-c", f"echo '{json.dumps(holder)}' > {BACKUP_DIR}/.lock/holder.json", user="postgres")
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


def test_a_bad_retention_policy_fails_before_the_dump(first_backup, tmp_path):
    ok = first_backup
    before = backup_files()
    result, _ = ansible_playbook(
        "backup.yml", "-e", "backup_id=t-policy", "-e", '{"backup_retention": {"keep_last": -1}}',
        env={"TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode != 0
    assert "backup_retention ({'keep_last': -1}) must map keep_last" in result.stdout, result.stdout[-5000:]
    assert "whole numbers, 0 or more" in result.stdout
    # Refused before anything changed (issue 19 item 16): no archive made, no dump taken; the
    # names are those of the tasks in a backup that ran.
    assert ARCHIVE_TASK in ok.stdout and DUMP_TASK in ok.stdout  # the names of tasks that run
    assert ARCHIVE_TASK not in result.stdout and DUMP_TASK not in result.stdout
    assert backup_files() == before
    assert leftovers(tmp_path) == {}
