"""The deploy role's host-side script roles/deploy/files/host_state.py, run as the role runs it
(`python3 -c <script> args...`) on a real directory tree and against real sockets on this machine."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

FILES = Path(__file__).resolve().parents[2] / "roles" / "deploy" / "files"


def run(script: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", (FILES / script).read_text(), *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_host_state_measures_free_space_and_reaches_ports(tmp_path):
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))
        started = time.monotonic()
        seen = run(
            "host_state.py",
            str(tmp_path / "current"),
            "",
            str(tmp_path),
            "1",
            "",
            f"database=127.0.0.1:{listening.getsockname()[1]}",
            f"broker=127.0.0.1:{closed.getsockname()[1]}",
        )
    assert seen["answers"] == {"database": True, "broker": False}
    assert "broker" in seen["errors"] and "database" not in seen.get("errors", {})
    assert seen["free_mb"] > 0
    assert 0.9 <= time.monotonic() - started < 30
    assert seen["pointer"] is None and seen["revision"] == "" and seen["wheelhouse"] is False


def test_host_state_reads_the_pointer_its_revision_and_the_wheelhouse(tmp_path):
    release = tmp_path / "releases" / "r2"
    release.mkdir(parents=True)
    (release / "REVISION").write_text("abc123\n")
    (tmp_path / "current").symlink_to("releases/r2")
    wheelhouse = tmp_path / "shared" / "wheelhouse" / "f00"
    wheelhouse.mkdir(parents=True)
    args = (str(tmp_path / "current"), str(wheelhouse), str(tmp_path), "1", str(tmp_path / "progress"))
    seen = run("host_state.py", *args)
    assert seen["pointer"] == "releases/r2" and seen["revision"] == "abc123"
    assert seen["wheelhouse"] is False  # unpacking not finished: no .complete yet
    assert seen["answers"] == {}
    (wheelhouse / ".complete").write_text("")
    assert run("host_state.py", *args)["wheelhouse"] is True
    (release / "REVISION").unlink()  # a release without REVISION: served, revision unknown
    seen = run("host_state.py", *args)
    assert seen["pointer"] == "releases/r2" and seen["revision"] == ""
    assert run("host_state.py", str(tmp_path / "none"), "", str(tmp_path / "missing"), "1", "")["free_mb"] is None


def test_host_state_reports_the_progress_note_of_a_run_cut_short(tmp_path):
    """activate.yml leaves a note while a host is switched, restarted or out of the load balancer."""
    note = tmp_path / "journal-current.progress"
    args = (str(tmp_path / "current"), "", str(tmp_path), "1", str(note))
    assert run("host_state.py", *args)["progress"] is None  # no note: no run was cut short
    note.write_text(json.dumps({"release": "r3", "previous": "r2", "since": "2026-12-05T17:00:00Z"}))
    assert run("host_state.py", *args)["progress"] == {
        "release": "r3",
        "previous": "r2",
        "since": "2026-12-05T17:00:00Z",
    }
    note.write_text("{half a no")  # a note cut short itself still says the run was cut short
    assert run("host_state.py", *args)["progress"] == {}
    assert run("host_state.py", *args[:4], "")["progress"] is None
