"""opsbook.webstack.backup_publish on a real directory: archives checked, manifest last, nothing half-published."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pwd
import subprocess
import tarfile
from pathlib import Path

import pytest
from module_runner import run_module

ID = "20261129T030000Z"
MANIFEST = {
    "id": ID,
    "app": "journal",
    "time": "2026-11-29T03:00:00+00:00",
    "tables": {"public.a": 3},
    "verified": True,
}


def tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def staged(tmp_path):
    """A backup as the role leaves it before publication: the dump and two archives under temporary names."""
    (tmp_path / f".tmp-{ID}.dump").write_bytes(b"PGDMP" + os.urandom(4096))
    tar_gz(tmp_path / f".tmp-{ID}-media.tar.gz", {"media/cover.txt": b"cover", "media/big.bin": os.urandom(300_000)})
    tar_gz(tmp_path / f".tmp-{ID}-config-app1.tar.gz", {"etc/opsbook/env": b"SECRET_KEY=never-printed\n"})
    return tmp_path


def publish(directory: Path, *, dump: str = f".tmp-{ID}.dump", name: str = f"journal-{ID}.dump",
            archives=("media", "config-app1"), check_mode: bool = False, **extra):  # fmt: skip
    args = {
        "path": str(directory),
        "dump": dump,
        "name": name,
        "manifest": MANIFEST,
        "archives": [{"name": a, "src": f".tmp-{ID}-{a}.tar.gz", "dest": f"journal-{ID}-{a}.tar.gz"} for a in archives],
        **extra,
    }
    return run_module("backup_publish", args, check_mode=check_mode)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_publishes_the_archives_the_dump_then_the_manifest_and_the_links(staged):
    media_sha = hashlib.sha256((staged / f".tmp-{ID}-media.tar.gz").read_bytes()).hexdigest()
    result = publish(staged, owner=pwd.getpwuid(os.getuid()).pw_name)
    assert result.changed and not result.failed, result.msg
    assert [Path(p).name for p in result["published"]] == [
        f"journal-{ID}-media.tar.gz", f"journal-{ID}-config-app1.tar.gz", f"journal-{ID}.dump", f"journal-{ID}.json"
    ]  # fmt: skip
    assert not [n for n in listing(staged) if n.startswith(".")]
    manifest = json.loads((staged / f"journal-{ID}.json").read_text())
    assert manifest == result["manifest"]
    assert manifest["file"] == f"journal-{ID}.dump" and manifest["tables"] == {"public.a": 3}
    media = manifest["files"]["media"]
    assert media == {
        "file": f"journal-{ID}-media.tar.gz",
        "size": (staged / f"journal-{ID}-media.tar.gz").stat().st_size,
        "sha256": media_sha,
    }
    assert oct((staged / f"journal-{ID}.json").stat().st_mode & 0o777) == "0o600"
    assert os.readlink(staged / "latest") == f"journal-{ID}.dump"
    assert os.readlink(staged / "latest.json") == f"journal-{ID}.json"
    assert "never-printed" not in result.stdout


def test_latest_moves_to_the_new_backup(staged):
    (staged / "journal-old.dump").write_bytes(b"PGDMP")
    (staged / "latest").symlink_to("journal-old.dump")
    (staged / "latest.json").symlink_to("journal-old.json")
    assert not publish(staged).failed
    assert os.readlink(staged / "latest") == f"journal-{ID}.dump"
    assert os.readlink(staged / "latest.json") == f"journal-{ID}.json"


@pytest.mark.parametrize("damage", ["cut", "flip", "not-gzip"])
def test_an_archive_that_does_not_decompress_whole_publishes_nothing(staged, damage):
    media = staged / f".tmp-{ID}-media.tar.gz"
    data = bytearray(media.read_bytes())
    if damage == "cut":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray(b"plain text, not gzip\n")
    media.write_bytes(bytes(data))
    gzip_t = subprocess.run(["gzip", "--test", str(media)], capture_output=True, check=False)
    assert gzip_t.returncode != 0  # the damage is real: gzip -t refuses it too
    before = listing(staged)
    result = publish(staged)
    assert result.failed and "the media archive" in result.msg and "nothing was published" in result.msg, result.msg
    assert result["published"] == []
    assert listing(staged) == before


def test_a_multi_member_gzip_passes(staged):
    media = staged / f".tmp-{ID}-media.tar.gz"
    media.write_bytes(media.read_bytes() + gzip.compress(b"\0" * 1024))
    assert subprocess.run(["gzip", "--test", str(media)], check=False).returncode == 0
    result = publish(staged)
    assert not result.failed, result.msg


def test_a_directory_format_dump(tmp_path):
    dump = tmp_path / f".tmp-{ID}.dir"
    dump.mkdir()
    (dump / "toc.dat").write_bytes(b"PGDMP")
    result = publish(tmp_path, dump=dump.name, name=f"journal-{ID}.dir", archives=())
    assert not result.failed, result.msg
    assert (tmp_path / f"journal-{ID}.dir" / "toc.dat").exists()
    assert json.loads((tmp_path / f"journal-{ID}.json").read_text())["files"] == {}
    assert os.readlink(tmp_path / "latest") == f"journal-{ID}.dir"


def test_check_mode_publishes_nothing(staged):
    before = listing(staged)
    result = publish(staged, check_mode=True)
    assert result.changed and Path(result["published"][-1]).name == f"journal-{ID}.json"
    assert listing(staged) == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"name": "../journal.dump"}, "name must be a file name inside"),
        ({"dump": ".tmp-missing.dump"}, "does not exist"),
        ({"owner": "no-such-user-here"}, "owner 'no-such-user-here' is not a user of this host"),
    ],
)
def test_bad_input_publishes_nothing(staged, extra, message):
    before = listing(staged)
    result = publish(staged, **extra)
    assert result.failed and message in result.msg and "nothing was published" in result.msg, result.msg
    assert listing(staged) == before


BUNDLE = f".tmp-{ID}-bundle.tar"


def bundled(directory: Path, members: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """Move the staged archives into one uncompressed tar, as the role sends them from the controller."""
    if members is None:
        members = {}
        for name in ("media", "config-app1"):
            staged_file = directory / f".tmp-{ID}-{name}.tar.gz"
            members[f"{name}.tar.gz"] = staged_file.read_bytes()
            staged_file.unlink()
    with tarfile.open(directory / BUNDLE, "w") as bundle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return members


def test_a_bundle_is_unpacked_checked_and_published_like_separate_archives(staged):
    members = bundled(staged)
    result = publish(staged, bundle=BUNDLE, owner=pwd.getpwuid(os.getuid()).pw_name)
    assert result.changed and not result.failed, result.msg
    assert not (staged / BUNDLE).exists() and not [n for n in listing(staged) if n.startswith(".")]
    files = json.loads((staged / f"journal-{ID}.json").read_text())["files"]
    for name in ("media", "config-app1"):
        published = staged / f"journal-{ID}-{name}.tar.gz"
        assert published.read_bytes() == members[f"{name}.tar.gz"]
        assert oct(published.stat().st_mode & 0o777) == "0o600"
        assert files[name] == {
            "file": published.name,
            "size": len(members[f"{name}.tar.gz"]),
            "sha256": hashlib.sha256(members[f"{name}.tar.gz"]).hexdigest(),
        }


@pytest.mark.parametrize("damage", ["cut_member", "stranger", "missing", "not_tar"])
def test_a_bad_bundle_publishes_nothing(staged, damage):
    members = bundled(staged)
    if damage == "cut_member":
        media = members["media.tar.gz"]
        bundled(staged, {**members, "media.tar.gz": media[: len(media) // 2]})
        message = "the media archive"
    elif damage == "stranger":
        bundled(staged, {**members, "../../etc/cron.d/evil": b"* * * * * root sh\n"})
        message = "which is not one of the archives"
    elif damage == "missing":
        bundled(staged, {"media.tar.gz": members["media.tar.gz"]})
        message = "lacks config-app1.tar.gz"
    else:
        (staged / BUNDLE).write_bytes(b"not a tar at all\n" * 64)
        message = "is not a readable tar"
    result = publish(staged, bundle=BUNDLE)
    assert result.failed and message in result.msg and "nothing was published" in result.msg, result.msg
    assert result["published"] == []
    assert not [n for n in listing(staged) if not n.startswith(".tmp-")]  # nothing under a published name
    assert not (staged.parent / "etc").exists()


# Rotation in the same call (rotate, release_lock): the backup role publishes, rotates and
# releases the backup lock in one module call.
OLDER = ("20261127T030000Z", "20261128T030000Z")


def older_backups(directory: Path) -> list[Path]:
    """Two published, verified backups of journal from before ID; their paths, manifests first."""
    paths = []
    for backup_id in OLDER:
        dump = directory / f"journal-{backup_id}.dump"
        dump.write_bytes(b"PGDMP" + os.urandom(64))
        manifest = directory / f"journal-{backup_id}.json"
        time = f"{backup_id[:4]}-{backup_id[4:6]}-{backup_id[6:8]}T03:00:00+00:00"
        manifest.write_text(json.dumps({"id": backup_id, "app": "journal", "time": time, "file": dump.name,
                                        "verified": True, "files": {}}))  # fmt: skip
        paths += [manifest, dump]
    return paths


def hold_lock(directory: Path, token: str) -> Path:
    lock = directory / ".lock"
    lock.mkdir()
    (lock / "holder.json").write_text(json.dumps({"token": token, "user": "u", "action": "backup"}))
    return lock


def test_rotates_after_publishing_and_releases_the_lock(staged):
    old = older_backups(staged)
    lock = hold_lock(staged, "run-a")
    result = publish(staged, rotate={"app": "journal", "policy": {"keep_last": 2}}, release_lock="run-a")
    assert result.changed and not result.failed, result.msg
    assert (staged / f"journal-{ID}.json").is_file() and os.readlink(staged / "latest") == f"journal-{ID}.dump"
    rotation = result["rotation"]
    assert rotation["plan"]["keep"] == [ID, OLDER[1]] and rotation["plan"]["delete"] == [OLDER[0]]
    assert [Path(p).name for p in rotation["deleted"]] == [old[0].name, old[1].name]  # manifest first
    assert not old[0].exists() and not old[1].exists() and old[2].exists() and old[3].exists()
    assert rotation["summary"].startswith("rotation of journal in ") and f"deleted {OLDER[0]}" in rotation["summary"]
    assert [m["id"] for m in rotation["kept"]] == [ID, OLDER[1]]
    assert result["lock_released"] is True and not lock.exists()


def test_a_bad_policy_fails_before_anything_is_published_and_releases_the_lock(staged):
    older_backups(staged)
    lock = hold_lock(staged, "run-a")
    before = listing(staged)
    result = publish(staged, rotate={"app": "journal", "policy": {"keep_last": -1}}, release_lock="run-a")
    assert result.failed and "backup_retention: keep_last must be 0 or more" in result.msg, result.msg
    assert "nothing was published" in result.msg and result["published"] == []
    assert listing(staged) == [n for n in before if n != ".lock"]
    assert result["lock_released"] is True and not lock.exists()


def test_a_rotation_failure_after_publication_says_what_was_published(staged):
    old = older_backups(staged)
    bad = json.loads(old[0].read_text())
    old[0].write_text(json.dumps(dict(bad, file="../../etc/passwd")))
    lock = hold_lock(staged, "run-a")
    result = publish(staged, rotate={"app": "journal", "policy": {"keep_last": 1}}, release_lock="run-a")
    assert result.failed, result
    assert f"backup {ID} was published" in result.msg and "rotation failed" in result.msg, result.msg
    assert "'../../etc/passwd', which is not a file of" in result.msg
    assert Path(result["published"][-1]).name == f"journal-{ID}.json" and (staged / f"journal-{ID}.json").is_file()
    assert all(p.exists() for p in old), "rotation deleted something though it failed"
    assert result["lock_released"] is True and not lock.exists()


def test_another_runs_lock_is_left_alone(staged):
    lock = hold_lock(staged, "run-b")
    result = publish(staged, rotate={"app": "journal", "policy": {"keep_last": 1}}, release_lock="run-a")
    assert not result.failed and result["lock_released"] is False and lock.exists()


def test_check_mode_says_what_rotation_would_delete_and_changes_nothing(staged):
    older_backups(staged)
    lock = hold_lock(staged, "run-a")
    before = listing(staged)
    result = publish(
        staged, check_mode=True, rotate={"app": "journal", "policy": {"keep_last": 1}}, release_lock="run-a"
    )
    assert result.changed and not result.failed, result.msg
    assert result["rotation"]["plan"]["delete"] == [OLDER[1], OLDER[0]]
    assert f"would delete {OLDER[1]}" in result["rotation"]["summary"]
    assert f"would keep {ID}" in result["rotation"]["summary"]
    assert listing(staged) == before and lock.exists() and result["lock_released"] is False
