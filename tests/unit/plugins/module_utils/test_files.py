"""module_utils/files.py on a real directory: the new content whole, the mode given or kept, and
nothing left behind when the write fails (deploy_record's local fact, nginx_upstream_server's file)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from ansible_collections.opsbook.webstack.plugins.module_utils.files import write_atomic


def test_a_new_file_gets_the_mode_given(tmp_path: Path) -> None:
    path = tmp_path / "app.fact"
    write_atomic(str(path), '{"a": 1}\n', 0o644)
    assert path.read_text() == '{"a": 1}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["app.fact"]


def test_without_a_mode_the_old_files_mode_and_owner_stay(tmp_path: Path) -> None:
    path = tmp_path / "upstream.conf"
    path.write_text("server a:1;\n")
    path.chmod(0o640)
    before = path.stat()
    write_atomic(str(path), "server a:1 down;\n")
    after = path.stat()
    assert path.read_text() == "server a:1 down;\n"
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # renamed over, not written in place


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "missing-before.conf"
    with pytest.raises(FileNotFoundError):
        write_atomic(str(path), "x")  # no mode and no old file to take it from
    assert os.listdir(tmp_path) == []
