"""restart.yml on the lab: under load through lb1, a restart of everything fails no request,
restarts every unit on every host one host at a time (seen from systemd) and loses no Celery
task; a host whose gate fails stops the run and the other host is not touched; check mode, a
bad scope and a held deploy lock restart nothing; --limit restarts one host."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
import time

import pytest
from ansible_collections.opsbook.webstack.plugins.module_utils.lock import process_owner
from lab_helpers import BIN, PORT, ROOT, ansible_playbook, as_app, lab_exec
from loadgen import LoadGenerator

pytestmark = pytest.mark.lab

HOSTS = ("app1", "app2")
LOCK = "/var/lib/opsbook/journal-deploy.lock"
UPSTREAM = "/etc/nginx/opsbook/journal-upstream.conf"
ENV = "/srv/journal/shared/env"
PROPERTIES = ("MainPID", "ActiveEnterTimestampMonotonic", "InactiveEnterTimestampMonotonic", "ActiveState")


def units(host: str) -> dict[str, dict[str, str]]:
    """Every loaded unit of the app journal (journal.*, journal-*) as systemd sees it, the socket included;
    not the blue-green app journal_bg's that the demo deploys."""
    patterns = ("journal.*", "journal-*")
    listed = lab_exec(host, "systemctl", "list-units", *patterns, "--all", "--plain", "--no-legend").stdout
    names = sorted(line.split()[0] for line in listed.splitlines() if line.strip())
    shown = lab_exec(host, "systemctl", "show", *[f"--property={p}" for p in PROPERTIES], *names).stdout
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line) for block in shown.split("\n\n")]
    blocks = [block for block in blocks if block]
    return dict(zip(names, blocks, strict=True))


def snapshot() -> dict[str, dict[str, dict[str, str]]]:
    return {host: units(host) for host in HOSTS}


def services(state: dict[str, dict[str, str]]) -> list[str]:
    return [name for name in state if name.endswith(".service")]


def marked_down() -> list[str]:
    """The app hosts lb1's nginx upstream has marked `down`."""
    text = lab_exec("lb1", "cat", UPSTREAM).stdout
    return re.findall(r"^\s*server\s+(\w+):\d+\b[^;]*\bdown;", text, re.MULTILINE)


def lock_held() -> bool:
    return lab_exec("app1", "test", "-e", LOCK, check=False).returncode == 0


def last_log_line(host: str) -> dict:
    return json.loads(lab_exec(host, "tail", "-n", "1", "/var/log/opsbook/journal-deploy.jsonl").stdout)


def stats(stdout: str) -> dict:
    """The set_stats block that ANSIBLE_SHOW_CUSTOM_STATS prints."""
    return json.loads(stdout.split("RUN:", 1)[1].strip().splitlines()[0])


def task_states(ids: list[str]) -> dict[str, str]:
    quoted = ", ".join(f"'{i}'" for i in ids)
    sql = f"SELECT task_id, status FROM django_celery_results_taskresult WHERE task_id IN ({quoted})"
    out = lab_exec("db1", "runuser", "-u", "postgres", "--", "psql", "-d", "journal", "-AtF", " ", "-c", sql).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def test_bad_scope_is_refused_naming_it_before_anything_changes(lab):
    before = snapshot()
    result, _ = ansible_playbook("restart.yml", "-e", "restart_scope=everything")
    assert result.returncode != 0
    assert "value of restart_scope must be one of: all, web, workers, got: everything" in result.stdout, result.stdout[
        -3000:
    ]
    assert "PLAY [Restart one host at a time]" not in result.stdout
    assert snapshot() == before
    assert not lock_held()


def test_check_mode_says_what_it_would_restart_and_restarts_nothing(lab):
    before = snapshot()
    result, recap = ansible_playbook("restart.yml", "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    would = re.findall(r'"msg": "would restart ([^"]+)"', result.stdout)
    assert len(would) == 2, result.stdout[-4000:]
    assert all("journal.service" in w and "journal-worker.service" in w for w in would), would
    assert snapshot() == before
    assert not lock_held()
    assert stats(result.stdout)["restart_result"] == "check"


def test_a_held_deploy_lock_refuses_the_restart(lab):
    """A deploy holding the lock (its ansible-playbook process alive on this controller: this test's)."""
    args = {
        "path": LOCK,
        "token": "test-restart-holder",
        "holder": {"user": "tester", "controller": "pytest", "release": "20990101T000000Z-v9", "action": "deploy"},
        "owner": process_owner(os.getpid()),
    }

    def adhoc(module_args: dict) -> subprocess.CompletedProcess:
        argv = [BIN / "ansible", "-i", "inventories/lab", "app1", "-m", "opsbook.webstack.deploy_lock"]
        return subprocess.run(
            [*argv, "-a", json.dumps(module_args)], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120
        )

    taken = adhoc(args)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    try:
        before = snapshot()
        result, _ = ansible_playbook("restart.yml")
        assert result.returncode != 0
        assert "tester" in result.stdout and "deploy" in result.stdout, result.stdout[-3000:]
        assert "PLAY [Restart one host at a time]" not in result.stdout  # refused in the first play
        assert snapshot() == before
    finally:
        released = adhoc({"path": LOCK, "token": "test-restart-holder", "state": "absent"})
        assert released.returncode == 0, released.stdout
    assert not lock_held()


def test_restart_all_under_load_fails_no_request_and_loses_no_task(lab):
    before = snapshot()
    submitted: list[str] = []
    done = threading.Event()

    def submit() -> None:
        # Celery tasks sent while the workers are drained and restarted, one host after the other.
        while not done.is_set():
            out = as_app("app2", "/srv/journal/current/venv/bin/celery", "-A", "journal", "call",
                         "articles.tasks.slow_task", "--args", "[1]").stdout.strip()  # fmt: skip
            submitted.append(out.splitlines()[-1])
            done.wait(3)

    sender = threading.Thread(target=submit, daemon=True)
    load = LoadGenerator(f"http://127.0.0.1:{PORT}/version/", threads=4, rate=50).start()
    sender.start()
    try:
        result, recap = ansible_playbook("restart.yml", "-e", "restart_scope=all")
    finally:
        counts = load.stop()
        done.set()
        sender.join(timeout=60)
    assert result.returncode == 0, result.stdout[-5000:]
    assert counts["sent"] > 0 and counts["failed"] == 0, counts
    after = snapshot()
    for host in HOSTS:
        assert services(before[host]) == services(after[host]) and services(after[host]), (before[host], after[host])
        for unit in services(after[host]):
            was, now = before[host][unit], after[host][unit]
            assert now["ActiveState"] == "active", (host, unit, now)
            assert now["MainPID"] != was["MainPID"], (host, unit, was, now)
            assert now["ActiveEnterTimestampMonotonic"] != was["ActiveEnterTimestampMonotonic"], (host, unit)
        # systemd keeps the listening socket (and the connections waiting on it) through the restart.
        assert after[host]["journal.socket"] == before[host]["journal.socket"], host
    # One host at a time: app2's Gunicorn stopped only after app1's was serving again.
    assert int(after["app2"]["journal.service"]["InactiveEnterTimestampMonotonic"]) > int(
        after["app1"]["journal.service"]["ActiveEnterTimestampMonotonic"]
    )
    assert marked_down() == []
    assert not lock_held()
    for host in HOSTS:
        line = last_log_line(host)
        assert line["action"] == "restart" and line["result"] == "restarted" and line["switched"] is False, line
    report = stats(result.stdout)
    assert report["restart_result"] == "restarted" and sorted(report["restart_hosts"]) == list(HOSTS), report
    # Every task sent during the restart ran: none was lost with a worker that restarted.
    assert len(submitted) >= 2, submitted
    deadline = time.monotonic() + 90
    while (states := task_states(submitted)) != dict.fromkeys(submitted, "SUCCESS") and time.monotonic() < deadline:
        time.sleep(2)
    assert states == dict.fromkeys(submitted, "SUCCESS"), (submitted, states)


def test_a_failed_gate_stops_the_run_and_leaves_the_other_host_untouched(lab):
    """app1 (restarted first) cannot serve: its env names a settings module that does not exist."""
    lab_exec("app1", "cp", "-p", ENV, f"{ENV}.test-restart")
    broken = f"printf '%s\\n' 'DJANGO_SETTINGS_MODULE=\"journal.no_such_settings\"' >> {shlex.quote(ENV)}"
    lab_exec("app1", "sh", "-c", broken)
    before = snapshot()
    load = LoadGenerator(f"http://127.0.0.1:{PORT}/version/", threads=4, rate=50).start()
    try:
        # app1 can never pass (a broken settings module): 8 s of gate prove that as well as 20 did.
        result, _ = ansible_playbook("restart.yml", "-e", "deploy_health_timeout=8")
        counts = load.stop()
        after = snapshot()
        assert result.returncode != 0
        message = re.search(r"Restart \(all\) failed on app1 at step '([^']+)'[^\n]*", result.stdout)
        assert message, result.stdout[-5000:]
        assert message.group(1) == "DEPLOY | Health gate on this host", message.group(0)
        assert "app1 is left out of the load balancer" in message.group(0)
        assert "Not touched: app2 (still in the load balancer)" in message.group(0)
        # app2 was not touched and kept serving every request alone.
        assert after["app2"] == before["app2"]
        assert counts["sent"] > 0 and counts["failed"] == 0, counts
        assert marked_down() == ["app1"]
        assert not lock_held()
        assert last_log_line("app1")["result"] == "failed"
        report = stats(result.stdout)
        assert report["restart_result"] == "failed" and report["restart_failed_host"] == "app1", report
        assert report["restart_untouched"] == ["app2"], report
    finally:
        lab_exec("app1", "mv", "-f", f"{ENV}.test-restart", ENV)

    # Fixed: a restart of that host alone takes it through again and back into the load balancer.
    result, recap = ansible_playbook("restart.yml", "--limit", "app1")
    assert result.returncode == 0, result.stdout[-5000:]
    assert set(recap) >= {"app1"} and "app2" not in recap, recap
    assert marked_down() == []
    fixed = snapshot()
    assert fixed["app2"] == before["app2"]
    assert all(fixed["app1"][u]["ActiveState"] == "active" for u in services(fixed["app1"])), fixed["app1"]
    versions = {lab_exec("lb1", "curl", "-s", "http://127.0.0.1/version/").stdout for _ in range(4)}
    assert {json.loads(v)["hostname"] for v in versions} == set(HOSTS), versions
