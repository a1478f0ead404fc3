"""run_lock (formerly deploy_lock) through ansible-playbook: the lock names the controller's ansible-playbook process;
a re-run on the same controller after that process was SIGKILLed takes the lock over at once,
naming the dead pid, and a holder process that is alive is never taken over."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent

PLAY = """\
- name: Take the lock
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Take it
      opsbook.webstack.run_lock:
        path: {path}
        token: {token}
        holder: {{user: tester, controller: here, release: r1, action: deploy}}
        stale_after: 3600
        wait_timeout: {wait}
    - name: Heartbeat, as each later deploy phase does
      opsbook.webstack.run_lock:
        path: {path}
        token: {token}
        state: heartbeat
      register: beat
    - name: Still held
      ansible.builtin.assert:
        that: beat.held and not beat.changed
    - name: Hold it
      ansible.builtin.command: sleep {hold}
      changed_when: false
      when: {hold} > 0
"""


def playbook(tmp: Path, name: str, token: str, hold: int = 0, wait: int = 0) -> Path:
    text = PLAY.format(path=tmp / "app-deploy.lock", token=token, hold=hold, wait=wait)
    path = tmp / f"{name}.yml"
    path.write_text(text)
    return path


def start(play: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }
    return subprocess.Popen(
        [str(BIN / "ansible-playbook"), str(play)],
        cwd=play.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_controller(pid: int) -> list[int]:
    """SIGKILL ansible-playbook as a dying controller goes: with its forked workers, each the
    leader of a session of its own (killpg of the playbook's group misses them), and what they
    run. Returns the workers' pids."""
    workers = []
    with contextlib.suppress(OSError):
        workers = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for group in [pid, *workers]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    return workers


def note(tmp: Path) -> dict:
    return json.loads((tmp / "app-deploy.lock" / "holder.json").read_text())


def wait_for_holder(tmp: Path, process: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (tmp / "app-deploy.lock" / "holder.json").exists():
            return note(tmp)
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.2)
    raise AssertionError("the first run never took the lock")


def test_a_rerun_after_sigkill_takes_over_and_a_live_holder_is_kept(tmp_path):
    first = start(playbook(tmp_path, "first", "run-killed", hold=600))
    try:
        held = wait_for_holder(tmp_path, first)
        # The note names the ansible-playbook process itself, not the worker that ran the task.
        assert held["owner"]["pid"] == first.pid, held
        assert held["owner"]["boot_id"] and held["owner"]["pidns"] and held["owner"]["pid_start"]

        # While it lives (with a fresh heartbeat, and even with a stale one) the lock is its own.
        old = time.time() - 7200
        os.utime(tmp_path / "app-deploy.lock" / "holder.json", (old, old))
        second = start(playbook(tmp_path, "second", "run-2"))
        out, _ = second.communicate(timeout=300)
        assert second.returncode != 0, out
        assert "Another run holds the lock" in out and f"pid {first.pid}" in out and "is alive" in out, out
        assert note(tmp_path)["token"] == "run-killed"
    finally:
        workers = kill_controller(first.pid)  # the controller dies: no rescue, no release
        first.wait()
    # Nothing of it lives on: the worker that ran `sleep 600` (a session leader) went too.
    assert workers  # the worker running the task `Hold it`
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], workers

    os.utime(tmp_path / "app-deploy.lock" / "holder.json")  # a heartbeat just before it died
    rerun = start(playbook(tmp_path, "rerun", "run-3"))
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out
    assert "took over the lock" in out and "tester@here" in out and f"pid {first.pid} is gone" in out, out
    assert note(tmp_path)["token"] == "run-3"
    assert note(tmp_path)["owner"]["pid"] == rerun.pid


def test_the_old_name_deploy_lock_still_works_through_the_action_plugin(tmp_path):
    """meta/runtime.yml redirects opsbook.webstack.deploy_lock (the name before 0.2.0) to run_lock:
    a playbook that still uses it takes the lock through the action plugin (the note names the
    ansible-playbook process) and is told the new name."""
    play = playbook(tmp_path, "old-name", "run-old")
    play.write_text(play.read_text().replace("opsbook.webstack.run_lock:", "opsbook.webstack.deploy_lock:"))
    assert "opsbook.webstack.run_lock" not in play.read_text()
    run = start(play)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out
    assert "deprecated" in out and "opsbook.webstack.run_lock" in out, out
    assert note(tmp_path)["token"] == "run-old"
    assert note(tmp_path)["owner"]["pid"] == run.pid
