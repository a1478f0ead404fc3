"""opsbook.webstack.backup_prepare on a real directory: make it, see a published backup, take the lock."""

from __future__ import annotations

import json
import os
import pwd
import stat
import time
from pathlib import Path

import pytest
from module_runner import run_module

ME = pwd.getpwuid(os.getuid()).pw_name
DONE = "journal-20261129T030000Z.json"


def prepare(directory: Path, token: str = "run-a", *, check_mode: bool = False, **extra):
    args = {
        "path": str(directory),
        "owner": ME,
        "done": DONE,
        "lock": {
            "token": token,
            "holder": {"user": "alice", "controller": "ci-3", "release": "r1", "action": "backup"},
        },
        **extra,
    }
    return run_module("backup_prepare", args, check_mode=check_mode)


def mode_of(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_makes_the_directory_and_takes_the_lock_then_refuses_a_second_run(tmp_path):
    directory = tmp_path / "backups" / "journal"
    first = prepare(directory)
    assert not first.failed and first.changed, first.msg
    assert first["directory"] == "created" and first["done"] is False
    assert first["lock"]["taken"] is True and first["lock"]["path"] == str(directory / ".lock")
    assert directory.is_dir() and mode_of(directory) == "0o700"
    assert (directory.stat().st_uid, directory.stat().st_gid) == (os.getuid(), pwd.getpwnam(ME).pw_gid)
    holder = json.loads((directory / ".lock" / "holder.json").read_text())
    assert holder["token"] == "run-a" and holder["user"] == "alice"
    assert "token" not in first["lock"]["holder"]

    second = prepare(directory, "run-b")
    assert second.failed
    assert (
        "Another run holds the lock" in second.msg
        and "alice@ci-3" in second.msg
        and "(release r1, backup)" in second.msg
    )
    assert json.loads((directory / ".lock" / "holder.json").read_text())["token"] == "run-a"


def test_a_published_backup_takes_no_lock_and_changes_nothing(tmp_path):
    tmp_path.chmod(0o700)
    (tmp_path / DONE).write_text("{}")
    result = prepare(tmp_path)
    assert not result.failed and not result.changed, result.msg
    assert result["done"] is True and result["directory"] == "ok" and result["lock"]["taken"] is False
    assert not (tmp_path / ".lock").exists()


def test_a_loose_mode_is_corrected(tmp_path):
    tmp_path.chmod(0o755)
    result = prepare(tmp_path)
    assert not result.failed and result.changed and result["directory"] == "corrected"
    assert mode_of(tmp_path) == "0o700"


def test_check_mode_touches_nothing_but_still_sees_a_held_lock(tmp_path):
    directory = tmp_path / "journal"
    check = prepare(directory, check_mode=True)
    assert not check.failed and check.changed and check["directory"] == "created"
    assert check["lock"]["taken"] is False and not directory.exists()

    directory.mkdir(mode=0o700)
    (directory / ".lock").mkdir()
    (directory / ".lock" / "holder.json").write_text(json.dumps({"token": "other", "user": "bob"}))
    held = prepare(directory, check_mode=True)
    assert held.failed and "bob@" in held.msg


def test_a_stale_lock_is_taken_over_naming_the_old_holder(tmp_path):
    tmp_path.chmod(0o700)
    lock = tmp_path / ".lock"
    lock.mkdir()
    (lock / "holder.json").write_text(json.dumps({"token": "dead", "user": "carol", "controller": "old"}))
    old = time.time() - 7200
    os.utime(lock, (old, old))
    result = prepare(tmp_path, lock={"token": "run-a", "stale_after": 3600})
    assert not result.failed and result["lock"]["taken"] is True
    assert result["lock"]["taken_over"]["user"] == "carol"
    assert "took over the stale lock" in json.dumps(result.data.get("warnings")), result.stdout
    assert "carol@old" in json.dumps(result.data.get("warnings"))
    assert json.loads((lock / "holder.json").read_text())["token"] == "run-a"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"owner": "no-such-user-opsbook"}, "owner 'no-such-user-opsbook' is not a user of this host"),
        ({"done": "../escape.json"}, "done must be a file name inside"),
        ({"mode": "rwx"}, "mode must be octal digits"),
    ],
    ids=["owner", "done", "mode"],
)
def test_bad_input_fails_before_anything_changes(tmp_path, extra, message):
    directory = tmp_path / "journal"
    result = prepare(directory, **extra)
    assert result.failed and message in result.msg, result.msg
    assert "nothing was changed" in result.msg and not directory.exists()


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "journal").write_text("not a directory")
    result = prepare(tmp_path / "journal", owner="root" if ME == "root" else ME)
    assert result.failed and "exists and is not a directory" in result.msg
