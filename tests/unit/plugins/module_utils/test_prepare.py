"""module_utils/prepare.py on a real directory: make it, see a published backup, take the lock.

pg_backup_dump's prepare option runs these steps before its dump (the backup role's first step);
they were the module backup_prepare until no role used it (issue 22)."""

from __future__ import annotations

import json
import os
import pwd
import stat
import time
from pathlib import Path

import pytest
from ansible_collections.opsbook.webstack.plugins.module_utils.prepare import (
    PrepareError,
    check,
    done_or_lock,
    ensure_directory,
)

ME = pwd.getpwuid(os.getuid()).pw_name
DONE = "journal-20261129T030000Z.json"
HOLDER = {"user": "alice", "controller": "ci-3", "release": "r1", "action": "backup"}


def prepare(directory: Path, token: str = "run-a", *, check_mode: bool = False, lock: dict | None = None, **extra):
    """The steps in pg_backup_dump's order (options as its prepare spec fills them); warnings beside the result."""
    params = {"path": str(directory), "owner": ME, "mode": "0700", "done": DONE, **extra}
    params["lock"] = {"token": token, "holder": HOLDER, "stale_after": 21600, **(lock or {})}
    warnings: list = []
    uid, gid, mode = check(params)
    state = ensure_directory(params["path"], uid, gid, mode, check_mode)
    return done_or_lock(params, state, check_mode, warnings.append), warnings


def mode_of(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_makes_the_directory_and_takes_the_lock_then_refuses_a_second_run(tmp_path):
    directory = tmp_path / "backups" / "journal"
    first, _warnings = prepare(directory)
    assert first["changed"] and first["directory"] == "created" and first["done"] is False
    assert first["lock"]["taken"] is True and first["lock"]["path"] == str(directory / ".lock")
    assert directory.is_dir() and mode_of(directory) == "0o700"
    assert (directory.stat().st_uid, directory.stat().st_gid) == (os.getuid(), pwd.getpwnam(ME).pw_gid)
    holder = json.loads((directory / ".lock" / "holder.json").read_text())
    assert holder["token"] == "run-a" and holder["user"] == "alice"
    assert "token" not in first["lock"]["holder"]

    with pytest.raises(PrepareError) as second:
        prepare(directory, "run-b")
    assert "Another run holds the lock" in second.value.msg
    assert "alice@ci-3" in second.value.msg and "(release r1, backup)" in second.value.msg
    assert json.loads((directory / ".lock" / "holder.json").read_text())["token"] == "run-a"


def test_a_published_backup_takes_no_lock_and_changes_nothing(tmp_path):
    tmp_path.chmod(0o700)
    (tmp_path / DONE).write_text("{}")
    result, _warnings = prepare(tmp_path)
    assert not result["changed"] and result["done"] is True and result["directory"] == "ok"
    assert result["lock"]["taken"] is False and not (tmp_path / ".lock").exists()


def test_a_loose_mode_is_corrected(tmp_path):
    tmp_path.chmod(0o755)
    result, _warnings = prepare(tmp_path)
    assert result["changed"] and result["directory"] == "corrected"
    assert mode_of(tmp_path) == "0o700"


def test_check_mode_touches_nothing_but_still_sees_a_held_lock(tmp_path):
    directory = tmp_path / "journal"
    result, _warnings = prepare(directory, check_mode=True)
    assert result["changed"] and result["directory"] == "created"
    assert result["lock"]["taken"] is False and not directory.exists()

    directory.mkdir(mode=0o700)
    (directory / ".lock").mkdir()
    (directory / ".lock" / "holder.json").write_text(json.dumps({"token": "other", "user": "bob"}))
    with pytest.raises(PrepareError, match="bob@"):
        prepare(directory, check_mode=True)


def test_a_stale_lock_is_taken_over_naming_the_old_holder(tmp_path):
    tmp_path.chmod(0o700)
    lock = tmp_path / ".lock"
    lock.mkdir()
    (lock / "holder.json").write_text(json.dumps({"token": "dead", "user": "carol", "controller": "old"}))
    old = time.time() - 7200
    os.utime(lock, (old, old))
    result, warnings = prepare(tmp_path, lock={"stale_after": 3600})
    assert result["lock"]["taken"] is True and result["lock"]["taken_over"]["user"] == "carol"
    assert any("took over the stale lock" in w and "carol@old" in w for w in warnings), warnings
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
    with pytest.raises(PrepareError) as failure:
        prepare(directory, **extra)
    assert message in failure.value.msg and "nothing was changed" in failure.value.msg
    assert not directory.exists()


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "journal").write_text("not a directory")
    with pytest.raises(PrepareError, match="exists and is not a directory"):
        prepare(tmp_path / "journal")
