"""The deploy role's host-side scripts (roles/deploy/files/), run as the role runs them
(`python3 -c <script> args...`) against a real HTTP server and real sockets on this machine."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parents[2] / "roles" / "deploy" / "files"


def run(script: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", (FILES / script).read_text(), *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def app():
    """A /health/ endpoint whose answers the test sets: a list served in turn (round robin)."""
    state = {"answers": [(200, {"version": "r1", "components": {"database": "ok"}})], "next": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            answers = state["answers"]
            status, body = answers[state["next"] % len(answers)]
            state["next"] += 1
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/health/"
    yield state
    server.shutdown()


def test_gate_passes_on_count_healthy_answers_of_the_release(app):
    seen = run("gate.py", "10", app["url"], "r1", "4")
    assert seen["ok"] is True
    assert len(seen["answers"]) == 4 and seen["version"] == "r1"


def test_gate_needs_count_in_a_row_and_says_what_it_saw(app):
    # Round robin over a new and an old host: never two new answers in a row.
    app["answers"] = [(200, {"version": "r1", "components": {}}), (200, {"version": "r0", "components": {}})]
    started = time.monotonic()
    seen = run("gate.py", "2", app["url"], "r1", "2")
    assert seen["ok"] is False
    assert time.monotonic() - started >= 2
    assert [a["what"] for a in seen["answers"]][-1] == "HTTP 200 version r0"


def test_gate_fails_a_component_that_is_not_ok(app):
    app["answers"] = [(503, {"version": "r1", "components": {"database": "error: gone", "redis": "ok"}})]
    seen = run("gate.py", "1", app["url"], "r1", "1")
    assert seen["ok"] is False
    assert seen["status"] == 503 and seen["answers"][0]["what"] == "HTTP 503 version r1 (database not ok)"


def test_gate_waits_for_the_release_to_come_up(app):
    app["answers"] = [(502, {})]
    threading.Timer(1.5, lambda: app.update(answers=[(200, {"version": "r1", "components": {}})])).start()
    seen = run("gate.py", "20", app["url"], "r1", "2")
    assert seen["ok"] is True


def test_gate_without_a_server_reports_no_answer():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        seen = run("gate.py", "1", f"http://127.0.0.1:{port}/health/", "r1", "1")
    assert seen["ok"] is False and seen["answers"][0]["what"].startswith("no answer")


def test_gate_checks_units_with_systemctl_when_given():
    # No systemd here: an unknown unit is not active, so the gate fails naming its state.
    seen = run("gate.py", "1", "", "r1", "1", "opsbook-no-such-unit.service")
    assert seen["ok"] is False
    assert list(seen["units"]) == ["opsbook-no-such-unit.service"]
    assert seen["units"]["opsbook-no-such-unit.service"] != "active"


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
