"""opsbook.webstack.backup_retention (backup_rotate before 0.2.0) on a real backup directory: what goes,
in which order, what never goes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from module_runner import run_module

APP = "journal"
NOW = "2026-11-29T12:00:00+00:00"


def publish(directory: Path, backup_id: str, time: str, *, verified: bool = True, fmt: str = "custom", app: str = APP,
            archives: tuple[str, ...] = ("media",)) -> list[Path]:  # fmt: skip
    """Write a published backup as the backup role leaves it; return its paths, manifest first."""
    if fmt == "directory":
        dump = directory / f"{app}-{backup_id}.dir"
        dump.mkdir()
        (dump / "toc.dat").write_bytes(b"PGDMP")
        (dump / "3001.dat.gz").write_bytes(os.urandom(64))
    else:
        dump = directory / f"{app}-{backup_id}.dump"
        dump.write_bytes(b"PGDMP" + os.urandom(64))
    files = {}
    paths = []
    for name in archives:
        archive = directory / f"{app}-{backup_id}-{name}.tar.gz"
        archive.write_bytes(os.urandom(32))
        files[name] = {"file": archive.name, "size": 32, "sha256": "0" * 64}
        paths.append(archive)
    manifest = directory / f"{app}-{backup_id}.json"
    data = {"id": backup_id, "app": app, "time": time, "file": dump.name, "verified": verified, "files": files}
    manifest.write_text(json.dumps(data))
    return [manifest, dump, *paths]


def rotate(directory: Path, policy: dict, *, check_mode: bool = False, **extra):
    args = {"path": str(directory), "app": APP, "policy": policy, "now": NOW, **extra}
    return run_module("backup_retention", args, check_mode=check_mode)


@pytest.fixture
def backups(tmp_path):
    old = publish(tmp_path, "20261127T030000Z", "2026-11-27T03:00:00+00:00", fmt="directory")
    middle = publish(tmp_path, "20261128T030000Z", "2026-11-28T03:00:00+00:00", archives=("media", "config-app1"))
    new = publish(tmp_path, "20261129T030000Z", "2026-11-29T03:00:00+00:00")
    (tmp_path / "latest").symlink_to(new[1].name)
    (tmp_path / "latest.json").symlink_to(new[0].name)
    return tmp_path, old, middle, new


def test_deletes_what_the_plan_lets_go_manifests_first(backups):
    directory, old, middle, new = backups
    result = rotate(directory, {"keep_last": 1})
    assert result.changed and not result.failed, result.msg
    assert result["plan"]["keep"] == ["20261129T030000Z"]
    assert result["plan"]["delete"] == ["20261128T030000Z", "20261127T030000Z"]
    assert result["deleted"][:2] == [str(middle[0]), str(old[0])]
    assert sorted(result["deleted"][2:]) == sorted(str(p) for p in middle[1:] + old[1:])
    assert not any(p.exists() for p in old + middle)
    assert all(p.exists() for p in new)
    assert os.readlink(directory / "latest") == new[1].name and (directory / "latest.json").exists()
    assert "deleted 20261128T030000Z (no rule keeps it)" in result["summary"]
    assert "kept 20261129T030000Z (one of the last 1" in result["summary"]
    assert [m["id"] for m in result["kept"]] == ["20261129T030000Z"]
    assert result["kept"][0]["file"] == new[1].name and result["kept"][0]["files"]["media"]["file"] == new[2].name

    again = rotate(directory, {"keep_last": 1})
    assert not again.changed and again["deleted"] == []


def test_check_mode_lists_and_deletes_nothing(backups):
    directory, old, middle, new = backups
    before = sorted(p.name for p in directory.iterdir())
    result = rotate(directory, {"keep_last": 2}, check_mode=True)
    assert result.changed and not result.failed
    assert result["deleted"][0] == str(old[0]) and set(result["deleted"]) == {str(p) for p in old}
    assert "would delete 20261127T030000Z" in result["summary"]
    assert [m["id"] for m in result["kept"]] == ["20261129T030000Z", "20261128T030000Z"]
    assert sorted(p.name for p in directory.iterdir()) == before


def test_an_unverified_backup_never_counts_and_goes(backups):
    directory, old, middle, new = backups
    failed = publish(directory, "20261129T040000Z", "2026-11-29T04:00:00+00:00", verified=False)
    result = rotate(directory, {"keep_last": 1})
    assert result["plan"]["keep"] == ["20261129T030000Z"]
    assert result["plan"]["reasons"]["20261129T040000Z"] == ["not verified"]
    assert not any(p.exists() for p in failed) and all(p.exists() for p in new)


def test_no_rule_keeps_everything(backups):
    directory, *_ = backups
    before = sorted(p.name for p in directory.iterdir())
    result = rotate(directory, {})
    assert not result.changed and result["plan"]["delete"] == []
    assert sorted(p.name for p in directory.iterdir()) == before


def test_another_apps_backups_sharing_the_prefix_are_not_touched(backups):
    directory, *_ = backups
    other = publish(directory, "20261101T030000Z", "2026-11-01T03:00:00+00:00", app="journal-bg")
    result = rotate(directory, {"keep_last": 1})
    assert (
        "bg-20261101T030000Z" not in result["plan"]["reasons"] and "20261101T030000Z" not in result["plan"]["reasons"]
    )
    assert all(p.exists() for p in other)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("escape", "names '../../etc/passwd', which is not a file of"),
        ("garbage", "cannot read the manifest"),
        ("policy", "backup_retention: keep_last must be 0 or more"),
    ],
)
def test_bad_input_fails_before_anything_is_deleted(backups, damage, message):
    directory, old, *_ = backups
    policy = {"keep_last": 1}
    if damage == "escape":
        data = json.loads(old[0].read_text())
        data["files"]["media"]["file"] = "../../etc/passwd"
        old[0].write_text(json.dumps(data))
    elif damage == "garbage":
        old[0].write_text("{not json")
    else:
        policy = {"keep_last": -1}
    before = sorted(p.name for p in directory.iterdir())
    result = rotate(directory, policy)
    assert result.failed and message in result.msg, result.msg
    assert "nothing was deleted" in result.msg
    assert sorted(p.name for p in directory.iterdir()) == before


def test_a_missing_directory_has_nothing_to_rotate(tmp_path):
    result = rotate(tmp_path / "absent", {"keep_last": 1})
    assert not result.failed and not result.changed and result["deleted"] == []


def test_list_only_returns_every_manifest_and_deletes_nothing(backups):
    directory, *_ = backups
    failed = publish(directory, "20261129T040000Z", "2026-11-29T04:00:00+00:00", verified=False)
    before = sorted(p.name for p in directory.iterdir())
    result = rotate(directory, {"keep_last": 1}, list_only=True)
    assert not result.changed and result["deleted"] == []
    assert [m["id"] for m in result["kept"]] == [
        "20261129T040000Z", "20261129T030000Z", "20261128T030000Z", "20261127T030000Z"
    ]  # fmt: skip
    assert result["kept"][0]["verified"] is False and failed[0].exists()
    assert sorted(p.name for p in directory.iterdir()) == before


def test_check_mode_plans_with_the_backup_the_run_would_take(backups):
    """Check mode must list what the real run deletes: the real run has one more, newest, backup."""
    directory, old, middle, new = backups
    before = sorted(p.name for p in directory.iterdir())
    pending = {"id": "20261129T120000Z", "time": "2026-11-29T12:00:00+00:00"}
    check = rotate(directory, {"keep_last": 1}, check_mode=True, pending=pending)
    assert check["plan"]["keep"] == ["20261129T120000Z"]
    assert check["plan"]["delete"] == ["20261129T030000Z", "20261128T030000Z", "20261127T030000Z"]
    assert "would keep 20261129T120000Z (one of the last 1" in check["summary"]
    assert "kept " not in check["summary"].replace("would keep ", "")
    assert "[the backup this run would take]" in check["summary"]
    assert check["kept"] == []
    assert sorted(p.name for p in directory.iterdir()) == before

    # The real run, after the backup is published: the same deletions.
    publish(directory, "20261129T120000Z", "2026-11-29T12:00:00+00:00")
    real = rotate(directory, {"keep_last": 1})
    assert real["plan"]["delete"] == check["plan"]["delete"]
    assert [m["id"] for m in real["kept"]] == ["20261129T120000Z"]


def hold_lock(directory: Path, token: str) -> Path:
    lock = directory / ".lock"
    lock.mkdir()
    (lock / "holder.json").write_text(json.dumps({"token": token, "user": "u", "action": "backup"}))
    return lock


@pytest.mark.parametrize("policy", [{"keep_last": 1}, {"keep_last": -1}], ids=["rotated", "rotation_failed"])
def test_release_lock_releases_this_runs_lock_after_rotation_even_when_it_fails(backups, policy):
    directory, *_ = backups
    lock = hold_lock(directory, "run-a")
    result = rotate(directory, policy, release_lock="run-a")
    assert result.failed == (policy["keep_last"] < 0), result.msg
    assert result["lock_released"] is True and not lock.exists()


def test_release_lock_leaves_another_runs_lock_and_check_mode_releases_nothing(backups):
    directory, *_ = backups
    lock = hold_lock(directory, "run-b")
    result = rotate(directory, {"keep_last": 1}, release_lock="run-a")
    assert not result.failed and result["lock_released"] is False and lock.exists()
    (lock / "holder.json").write_text(json.dumps({"token": "run-a"}))
    check = rotate(directory, {"keep_last": 1}, check_mode=True, release_lock="run-a")
    assert check["lock_released"] is False and lock.exists()


def test_the_old_name_backup_rotate_still_works(tmp_path):
    """meta/runtime.yml redirects opsbook.webstack.backup_rotate (the name before 0.2.0): a task that
    still uses it applies the policy, and the run is told the new name."""
    root = Path(__file__).resolve().parents[4]
    older = publish(tmp_path, "20261127T030000Z", "2026-11-27T03:00:00Z")
    newer = publish(tmp_path, "20261128T030000Z", "2026-11-28T03:00:00Z")
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(root / "playbooks" / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }
    args = json.dumps({"path": str(tmp_path), "app": APP, "policy": {"keep_last": 1}})
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-m", "opsbook.webstack.backup_rotate", "-a", args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "deprecated" in out and "opsbook.webstack.backup_retention" in out, out
    assert not any(p.exists() for p in older) and all(p.exists() for p in newer), out
