"""The backup's bundles and their steps one by one (issue 22 item 3): pg_backup_dump with
`prepare` (directory, lock, the drop to the owner, dump, verification) then backup_publish with
`rotate` and `release_lock` (publish, retention, unlock) - the backup role's two calls - against
the same steps as single-purpose module runs a task list can make with a hook between any two:
run_lock takes the lock, pg_backup_dump dumps alone, backup_publish publishes alone,
backup_retention applies the policy, run_lock releases the lock. Real PostgreSQL; both paths
must leave the same backups, manifests and rotation, and no lock."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest
from module_runner import run_module

DB = "backup_steps_test"
OLDER = ["20261127T030000Z", "20261128T030000Z"]
ID = "20261129T030000Z"
POLICY = {"keep_last": 2}


@pytest.fixture(scope="module")
def database(postgres_server):
    postgres_server.create_database(DB)
    postgres_server.execute(
        "CREATE TABLE public.article (id serial PRIMARY KEY, body text);"
        "INSERT INTO public.article (body) SELECT md5(g::text) FROM generate_series(1, 500) g;",
        dbname=DB,
    )
    return postgres_server


@pytest.fixture
def parent():
    """A directory the dump's owner can reach (pytest's tmp_path is root's, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="opsbook-steps-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def owner_name() -> str:
    return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def login(server) -> dict:
    return {
        "database": DB,
        "login_host": server.host,
        "login_port": server.port,
        "login_user": server.user,
        "login_password": server.password,
        "pg_bin_dir": str(server.bin_dir),
        "verify": "content",
    }


def older_backups(directory: Path) -> None:
    for backup_id in OLDER:
        dump = directory / f"journal-{backup_id}.dump"
        dump.write_bytes(b"PGDMP" + os.urandom(64))
        time = f"{backup_id[:4]}-{backup_id[4:6]}-{backup_id[6:8]}T03:00:00+00:00"
        (directory / f"journal-{backup_id}.json").write_text(
            json.dumps({"id": backup_id, "app": "journal", "time": time, "file": dump.name, "verified": True})
        )


def manifest(dumped: dict) -> dict:
    return {
        "id": ID,
        "app": "journal",
        "time": "2026-11-29T03:00:00+00:00",
        "tables": dumped["tables"],
        "sha256": dumped["sha256"],
        "verified": True,
    }


def publish_args(directory: Path, **extra) -> dict:
    return {"path": str(directory), "dump": f".tmp-{ID}.dump", "name": f"journal-{ID}.dump", **extra}


def outcome(directory: Path) -> dict:
    data = json.loads((directory / f"journal-{ID}.json").read_text())
    return {
        "listing": sorted(p.name for p in directory.iterdir()),
        "tables": data["tables"],
        "latest": os.readlink(directory / "latest"),
    }


def test_the_bundles_and_their_steps_one_by_one_leave_the_same_backups(database, parent):
    # The bundles, as roles/backup/tasks/dump.yml calls them.
    bundled = parent / "bundled"
    bundled.mkdir(mode=0o700)
    older_backups(bundled)
    shutil.chown(bundled, owner_name(), owner_name())
    for path in bundled.iterdir():
        shutil.chown(path, owner_name(), owner_name())
    lock = {"token": "run-a", "holder": {"user": "alice", "action": f"backup {ID} of journal"}}
    prepare = {"path": str(bundled), "owner": owner_name(), "done": f"journal-{ID}.json", "lock": lock}
    dumped = run_module(
        "pg_backup_dump",
        {**login(database), "dest": str(bundled / f".tmp-{ID}.dump"), "prepare": prepare},
        isolated=True,
    )
    assert not dumped.failed, dumped.msg
    assert dumped["lock"]["taken"] is True and (bundled / ".lock").is_dir()
    published = run_module(
        "backup_publish",
        publish_args(
            bundled,
            manifest=manifest(dumped.data),
            owner=owner_name(),
            rotate={"app": "journal", "policy": POLICY},
            release_lock="run-a",
        ),
    )
    assert not published.failed, published.msg
    assert published["lock_released"] is True

    # The same steps one module run each: a hook could sit between any two.
    steps = parent / "steps"
    steps.mkdir(mode=0o700)
    older_backups(steps)
    took = run_module("run_lock", {"path": str(steps / ".lock"), "token": "run-b", "holder": lock["holder"]})
    assert took.changed and not took.failed, took.msg
    alone = run_module("pg_backup_dump", {**login(database), "dest": str(steps / f".tmp-{ID}.dump")})
    assert not alone.failed, alone.msg
    assert "lock" not in alone.data and alone["verification"]["level"] == "content"
    assert (steps / ".lock").is_dir()  # the dump alone neither takes nor releases a lock
    put = run_module("backup_publish", publish_args(steps, manifest=manifest(alone.data)))
    assert not put.failed and "rotation" not in put.data and put["lock_released"] is False, put.data
    rotated = run_module("backup_retention", {"path": str(steps), "app": "journal", "policy": POLICY})
    assert not rotated.failed, rotated.msg
    released = run_module("run_lock", {"path": str(steps / ".lock"), "token": "run-b", "state": "absent"})
    assert released.changed and not (steps / ".lock").exists()

    # Same counts, same backups kept and deleted, no lock left in either.
    assert alone["tables"] == dumped["tables"] == {"public.article": 500}
    assert published["rotation"]["plan"]["keep"] == [ID, OLDER[1]] == rotated["plan"]["keep"]
    assert published["rotation"]["plan"]["delete"] == [OLDER[0]] == rotated["plan"]["delete"]
    assert outcome(bundled) == outcome(steps)
    assert ".lock" not in outcome(steps)["listing"]
