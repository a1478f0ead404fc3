"""opsbook.webstack.deploy_host_state (was roles/deploy/files/host_state.py run with `python3 -c`):
what the deploy reads on a host before anything changes, on a real directory tree and against
real sockets on this machine, in and out of check mode."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
from pathlib import Path

import pytest
from module_runner import run_module


def state(tmp_path: Path, *, check_mode: bool = False, **args) -> dict:
    params = {"pointer": str(tmp_path / "current"), "app_root": str(tmp_path), "timeout": 1, **args}
    result = run_module("deploy_host_state", params, check_mode=check_mode)
    assert not result.failed, result.data
    assert result.changed is False
    return result.data


def test_host_state_measures_free_space_and_reaches_ports(tmp_path):
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))
        started = time.monotonic()
        seen = state(
            tmp_path,
            reach=[
                {"name": "database", "host": "127.0.0.1", "port": listening.getsockname()[1]},
                {"name": "broker", "host": "127.0.0.1", "port": closed.getsockname()[1]},
            ],
        )
    assert seen["answers"] == {"database": True, "broker": False}
    assert "broker" in seen["errors"] and "database" not in seen.get("errors", {})
    assert seen["free_mb"] > 0
    assert 0.9 <= time.monotonic() - started < 30  # the closed port was tried for the whole timeout
    assert seen["pointer"] is None and seen["revision"] == "" and seen["wheelhouse"] is False
    assert seen["progress"] is None


def test_host_state_reads_the_pointer_its_revision_and_the_wheelhouse(tmp_path):
    release = tmp_path / "releases" / "r2"
    release.mkdir(parents=True)
    (release / "REVISION").write_text("abc123\n")
    (tmp_path / "current").symlink_to("releases/r2")
    wheelhouse = tmp_path / "shared" / "wheelhouse" / "f00"
    wheelhouse.mkdir(parents=True)
    args = {"wheelhouse": str(wheelhouse), "progress": str(tmp_path / "progress")}
    seen = state(tmp_path, **args)
    assert seen["pointer"] == "releases/r2" and seen["revision"] == "abc123"
    assert seen["wheelhouse"] is False  # unpacking not finished: no .complete yet
    assert seen["answers"] == {} and "errors" not in seen
    (wheelhouse / ".complete").write_text("")
    assert state(tmp_path, **args)["wheelhouse"] is True
    (release / "REVISION").unlink()  # a release without REVISION: served, revision unknown
    seen = state(tmp_path, **args)
    assert seen["pointer"] == "releases/r2" and seen["revision"] == ""
    missing = state(tmp_path, pointer=str(tmp_path / "none"), app_root=str(tmp_path / "missing"))
    assert missing["free_mb"] is None and missing["pointer"] is None


def test_host_state_reports_the_progress_note_of_a_run_cut_short(tmp_path):
    """activate.yml leaves a note while a host is switched, restarted or out of the load balancer."""
    note = tmp_path / "journal-current.progress"
    assert state(tmp_path, progress=str(note))["progress"] is None  # no note: no run was cut short
    note.write_text(json.dumps({"release": "r3", "previous": "r2", "since": "2026-12-05T17:00:00Z"}))
    assert state(tmp_path, progress=str(note))["progress"] == {
        "release": "r3",
        "previous": "r2",
        "since": "2026-12-05T17:00:00Z",
    }
    note.write_text("{half a no")  # a note cut short itself still says the run was cut short
    assert state(tmp_path, progress=str(note))["progress"] == {}
    assert state(tmp_path, progress="")["progress"] is None


def test_host_state_reads_the_same_in_check_mode(tmp_path):
    (tmp_path / "releases" / "r1").mkdir(parents=True)
    (tmp_path / "releases" / "r1" / "REVISION").write_text("f00\n")
    (tmp_path / "current").symlink_to("releases/r1")
    note = tmp_path / "progress"
    note.write_text(json.dumps({"release": "r1", "previous": ""}))
    before = sorted(os.listdir(tmp_path))
    plain, checked = state(tmp_path, progress=str(note)), state(tmp_path, progress=str(note), check_mode=True)
    for key in ("pointer", "revision", "wheelhouse", "progress", "answers", "platform"):
        assert plain[key] == checked[key], key
    assert sorted(os.listdir(tmp_path)) == before and note.exists()


def test_host_state_refuses_a_reach_entry_without_a_port(tmp_path):
    result = run_module(
        "deploy_host_state",
        {"pointer": str(tmp_path / "current"), "app_root": str(tmp_path), "reach": [{"name": "db", "host": "x"}]},
    )
    assert result.failed and "port" in result.msg, result.msg


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs /usr/bin/python3, as the role does")
def test_platform_names_os_machine_libc_and_the_interpreter_virtualenvs_are_made_with(tmp_path):
    """deploy_build once (issue 24 item 2) groups hosts by this key (roles/deploy/vars/main.yml)."""
    seen = state(tmp_path)["platform"]
    probe = subprocess.run(
        [
            "/usr/bin/python3",
            "-c",
            "import platform, sys; print(platform.python_version(), sys.implementation.cache_tag)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    release = dict(
        line.strip().split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
    )
    os_id = f"{release['ID'].strip(chr(34))}-{release.get('VERSION_ID', '').strip(chr(34))}"
    assert seen.startswith(f"{os_id} {platform.machine()} ")
    assert f" {os.path.realpath('/usr/bin/python3')} {probe[0]} {probe[1]} " in seen
    assert "glibc" in seen or "unknown-libc" in seen
