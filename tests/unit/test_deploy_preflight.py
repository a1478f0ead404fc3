"""The deploy role's host-side script roles/deploy/files/preflight.py, run as the role runs it
(`python3 -c <script> args...`) against real sockets on this machine."""

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


def test_preflight_measures_free_space_and_reaches_ports(tmp_path):
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))
        started = time.monotonic()
        seen = run(
            "preflight.py",
            str(tmp_path),
            "1",
            f"database=127.0.0.1:{listening.getsockname()[1]}",
            f"broker=127.0.0.1:{closed.getsockname()[1]}",
        )
    assert seen["answers"] == {"database": True, "broker": False}
    assert "broker" in seen["errors"] and "database" not in seen.get("errors", {})
    assert seen["free_mb"] > 0
    assert 0.9 <= time.monotonic() - started < 30
