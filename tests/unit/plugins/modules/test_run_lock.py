"""opsbook.webstack.run_lock on a real directory: take, refuse naming the holder, wait, stale takeover, release."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

from module_runner import run_module

HOLDER = {"user": "alice", "controller": "ci-3", "release": "20261122T081627Z-v2", "action": "deploy"}


def take(path, token, **extra):
    return run_module("run_lock", {"path": str(path), "token": token, "holder": HOLDER, **extra})


def test_take_then_refuse_a_second_run_naming_the_holder(tmp_path):
    lock = tmp_path / "lib" / "journal-deploy.lock"
    first = take(lock, "run-a")
    assert first.changed and not first.failed
    assert (lock / "holder.json").exists()
    assert "token" not in first["holder"]
    again = take(lock, "run-a")
    assert not again.changed and not again.failed
    second = take(lock, "run-b")
    assert second.failed
    assert "Another run holds the lock" in second.msg
    assert "alice@ci-3 since" in second.msg and "release 20261122T081627Z-v2, deploy" in second.msg


def test_a_waiting_run_gets_the_lock_once_released(tmp_path):
    lock = tmp_path / "lock"
    take(lock, "run-a")
    # The holder goes away (its release removes the directory) while run-b waits.
    threading.Timer(1.5, shutil.rmtree, args=(lock,)).start()
    started = time.monotonic()
    result = take(lock, "run-b", wait_timeout=20)
    assert not result.failed and result.changed
    assert 1.0 < time.monotonic() - started < 15


def test_a_stale_lock_is_taken_over(tmp_path):
    lock = tmp_path / "lock"
    take(lock, "run-a")
    old = time.time() - 7200  # no heartbeat (the note's mtime) for two hours
    os.utime(lock / "holder.json", (old, old))
    result = take(lock, "run-b", stale_after=3600)
    assert result.changed and not result.failed
    assert result["taken_over"]["user"] == "alice"
    assert "no heartbeat for 7200 s" in result["reason"]
    warnings = json.dumps(result.data.get("warnings"))
    assert "took over the lock" in warnings and "alice@ci-3" in warnings and "no heartbeat for" in warnings


def test_release_only_by_its_holder(tmp_path):
    lock = tmp_path / "lock"
    take(lock, "run-a")
    other = run_module("run_lock", {"path": str(lock), "token": "run-b", "state": "absent"})
    assert not other.changed and lock.exists()
    mine = run_module("run_lock", {"path": str(lock), "token": "run-a", "state": "absent"})
    assert mine.changed and not lock.exists()


def test_check_mode_touches_nothing(tmp_path):
    lock = tmp_path / "lock"
    result = run_module("run_lock", {"path": str(lock), "token": "run-a"}, check_mode=True)
    assert result.changed and not lock.exists()


def test_the_refusal_names_the_variable_that_sets_the_wait(tmp_path):
    lock = tmp_path / "lock"
    take(lock, "run-a")
    waited = take(lock, "run-b", wait_timeout=1, wait_timeout_name="backup_lock_wait")
    assert waited.failed and "Waited 1 s (backup_lock_wait)." in waited.msg
    at_once = take(lock, "run-b")
    assert at_once.failed and "Waited" not in at_once.msg
    assert at_once.msg.startswith(f"Another run holds the lock {lock}: alice@ci-3 since ")


def test_heartbeat_refreshes_only_its_own_lock_and_never_takes_one(tmp_path):
    lock = tmp_path / "lock"
    take(lock, "run-a")
    old = time.time() - 7200
    os.utime(lock / "holder.json", (old, old))
    beat = run_module("run_lock", {"path": str(lock), "token": "run-a", "state": "heartbeat"})
    assert not beat.failed and not beat.changed and beat["held"] is True
    assert time.time() - (lock / "holder.json").stat().st_mtime < 60
    # A deploy longer than stale_after keeps its lock: run-b finds it held.
    assert take(lock, "run-b", stale_after=3600).failed
    other = run_module("run_lock", {"path": str(lock), "token": "run-b", "state": "heartbeat"})
    assert not other.failed and other["held"] is False
    assert "no longer held by this run (held by alice@ci-3" in json.dumps(other.data.get("warnings"))
    shutil.rmtree(lock)
    gone = run_module("run_lock", {"path": str(lock), "token": "run-a", "state": "heartbeat"})
    assert not gone.failed and gone["held"] is False and not lock.exists()


def test_heartbeat_in_check_mode_of_a_run_that_took_no_lock_is_quiet(tmp_path):
    lock = tmp_path / "lock"
    beat = run_module("run_lock", {"path": str(lock), "token": "run-a", "state": "heartbeat"}, check_mode=True)
    assert not beat.failed and not beat.changed and beat["held"] is False
    # (warnings of earlier in-process module runs may linger in the list: look for this lock's)
    assert str(lock) not in json.dumps(beat.data.get("warnings")) and not lock.exists()
