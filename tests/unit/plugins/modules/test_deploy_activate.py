"""opsbook.webstack.deploy_activate: the switch on a real app root, the health gate against a real
HTTP server and real sockets, and its input checks. The restart step (systemd, Celery workers)
runs in the lab: tests/lab and the deploy and blue_green scenarios."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from module_runner import run_module


def gate(
    url: str, release: str, count: int, timeout: float, units: list[str] | None = None, also: list[str] | None = None
) -> dict:
    """The health step alone, as gate.yml runs it on a load balancer; returns what it saw."""
    args = {"steps": ["health"], "health_url": url, "health_release": release, "health_count": count}
    args["health_also"] = also or []
    result = run_module("deploy_activate", {**args, "health_timeout": timeout, "health_units": units or []})
    seen = result["health"]
    # The module fails exactly when the gate does, naming the step.
    assert result.failed is (not seen["ok"]), result.data
    assert result["step"] == ("" if seen["ok"] else "health")
    assert result.changed is False
    return seen


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
    seen = gate(app["url"], "r1", 4, timeout=10)
    assert seen["ok"] is True
    assert len(seen["answers"]) == 4 and seen["version"] == "r1"


def test_gate_needs_count_in_a_row_and_says_what_it_saw(app):
    # Round robin over a new and an old host: never two new answers in a row.
    app["answers"] = [(200, {"version": "r1", "components": {}}), (200, {"version": "r0", "components": {}})]
    started = time.monotonic()
    seen = gate(app["url"], "r1", 2, timeout=2)
    assert seen["ok"] is False
    assert time.monotonic() - started >= 2
    assert [a["what"] for a in seen["answers"]][-1] == "HTTP 200, version r0; JSON version is r0, expected r1"


def test_gate_accepts_the_releases_of_hosts_already_on_the_revision(app):
    # Scale-out: two hosts kept the release r0 of the same revision, the new ones got r1.
    app["answers"] = [(200, {"version": "r1", "components": {}}), (200, {"version": "r0", "components": {}})]
    assert gate(app["url"], "r1", 4, timeout=5, also=["r0"])["ok"] is True
    # Any other version still fails the gate.
    app["answers"] = [(200, {"version": "r1", "components": {}}), (200, {"version": "rX", "components": {}})]
    assert gate(app["url"], "r1", 4, timeout=1, also=["r0"])["ok"] is False


def test_gate_fails_a_component_that_is_not_ok(app):
    app["answers"] = [(503, {"version": "r1", "components": {"database": "error: gone", "redis": "ok"}})]
    seen = gate(app["url"], "r1", 1, timeout=1)
    assert seen["ok"] is False
    assert seen["status"] == 503
    assert seen["answers"][0]["what"] == "HTTP 503, version r1; HTTP 503, expected 200; components not ok: database"


def test_gate_waits_for_the_release_to_come_up(app):
    app["answers"] = [(502, {})]
    threading.Timer(1.5, lambda: app.update(answers=[(200, {"version": "r1", "components": {}})])).start()
    seen = gate(app["url"], "r1", 2, timeout=20)
    assert seen["ok"] is True


def test_gate_without_a_server_reports_no_answer():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        seen = gate(f"http://127.0.0.1:{port}/health/", "r1", 1, timeout=1)
    assert seen["ok"] is False and seen["answers"][0]["what"].startswith("no answer")


def test_gate_checks_units_with_systemctl_when_given():
    # No systemd here: an unknown unit is not active, so the gate fails naming its state.
    seen = gate("", "r1", 1, timeout=1, units=["opsbook-no-such-unit.service"])
    assert seen["ok"] is False
    assert list(seen["units"]) == ["opsbook-no-such-unit.service"]
    assert seen["units"]["opsbook-no-such-unit.service"] != "active"


def test_gate_failure_says_what_it_saw(app):
    app["answers"] = [(503, {"version": "r0", "components": {"database": "error: gone"}})]
    result = run_module(
        "deploy_activate", {"steps": ["health"], "health_url": app["url"], "health_release": "r1", "health_timeout": 0}
    )
    assert result.failed
    assert result.msg.startswith(
        "did not serve r1 healthy within 0 s: answers: HTTP 503, version r0; HTTP 503, expected 200;"
        " components not ok: database; JSON version is r0, expected r1"
    )


# --------------------------------------------------------------------------- switch


def make_root(tmp_path, releases=("r1", "r2"), complete=True):
    root = tmp_path / "srv"
    for name in releases:
        (root / "releases" / name / "venv" / "bin").mkdir(parents=True)
        if complete:
            (root / "releases" / name / "venv" / "bin" / "python").write_text("")
    return root


def switch(root, release, pointer="current"):
    return run_module(
        "deploy_activate",
        {"steps": ["switch"], "app_root": str(root), "pointer": str(root / pointer), "release": release},
    )


def test_switch_points_the_pointer_at_the_release_and_a_second_run_changes_nothing(tmp_path):
    root = make_root(tmp_path)
    first = switch(root, "r1")
    assert not first.failed and first.changed and first["switched"] is True
    assert os.readlink(root / "current") == "releases/r1"
    again = switch(root, "r1")
    assert not again.failed and not again.changed and again["switched"] is False
    moved = switch(root, "r2")
    assert moved.changed and os.readlink(root / "current") == "releases/r2"
    assert sorted(p.name for p in root.iterdir()) == ["current", "releases"]  # no temporary link left


def test_switch_replaces_a_leftover_temporary_link(tmp_path):
    root = make_root(tmp_path)
    os.symlink("releases/r2", root / "current.new")  # a run killed between its two steps
    assert switch(root, "r1").changed
    assert os.readlink(root / "current") == "releases/r1"
    assert not os.path.lexists(root / "current.new")


def test_switch_refuses_a_release_without_virtualenv_and_changes_nothing(tmp_path):
    root = make_root(tmp_path, releases=("r1",))
    switch(root, "r1")
    (root / "releases" / "r3").mkdir()  # unfinished: no venv
    refused = switch(root, "r3")
    assert refused.failed and refused["step"] == "switch" and not refused.changed
    assert f"{root}/releases/r3 has no virtualenv (missing or unfinished release)" in refused.msg
    assert os.readlink(root / "current") == "releases/r1"
    assert switch(root, "nope").failed


def test_switch_then_gate_stops_at_the_gate_with_the_switch_done(tmp_path):
    root = make_root(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/health/"
        result = run_module(
            "deploy_activate",
            {
                "steps": ["health", "switch"],  # run in their own order whatever the order given
                "app_root": str(root),
                "pointer": str(root / "current"),
                "release": "r2",
                "health_url": url,
                "health_timeout": 0,
            },
        )
    assert result.failed and result["step"] == "health" and result.changed
    assert result["switched"] is True and os.readlink(root / "current") == "releases/r2"
    assert "did not serve r2 healthy" in result.msg
    assert set(result["seconds"]) == {"switch"}


# --------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        ({"steps": ["switch"], "release": "r1"}, "need app_root, pointer"),
        ({"steps": ["health"], "health_url": "http://127.0.0.1:9/"}, "need health_release"),
        ({"steps": ["restart"], "workers": [{"unit": "w.service", "node": "w@h"}]}, "need broker_url"),
    ],
)
def test_missing_input_is_named_before_anything_changes(args, needs):
    result = run_module("deploy_activate", args)
    assert result.failed and needs in result.msg and "nothing was changed" in result.msg


def test_a_drain_that_cannot_reach_the_broker_names_the_step_and_never_the_password():
    # systemctl has no running worker here, so the drain step is called alone, as restart() calls it.
    from ansible_collections.opsbook.webstack.plugins.module_utils import activation as da

    secret = "s3cr3t-Pa55"  # noqa: S105 - a test value
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: refused
        url = f"redis://:{secret}@127.0.0.1:{sock.getsockname()[1]}/0"
        params = {"broker_url": url, "accept_content": ["json"], "drain_timeout": 1.0, "celery_timeout": 0.5}
        module = type("Module", (), {"params": params, "check_mode": False, "warn": lambda self, msg: None})()
        with pytest.raises(da.StepFailed) as failed:
            da.drain(module, [{"unit": "w.service", "node": "w@app1"}], {}, [secret])
    assert failed.value.step == "drain"
    assert str(failed.value).startswith("drain of w@app1: cannot connect to the broker at 127.0.0.1:")
    assert secret not in str(failed.value)
