"""module_utils/lock.py on real directories and real processes: liveness by heartbeat and by the
holder's process, and an atomic takeover of a stale lock (of racing takers exactly one wins)."""

from __future__ import annotations

import multiprocessing
import os
import random
import subprocess
import threading
import time

import pytest
from ansible_collections.opsbook.webstack.plugins.module_utils import lock as lockmod

HOLDER = {"user": "alice", "controller": "ci-3", "release": "r1", "action": "deploy"}


def age(path, seconds: float) -> None:
    """Make the lock look as if it was taken, and last heard of, `seconds` ago."""
    old = time.time() - seconds
    for name in (lockmod.HOLDER,):
        target = os.path.join(path, name)
        if os.path.exists(target):
            os.utime(target, (old, old))
    os.utime(path, (old, old))


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def owner(pid: int, **identity) -> dict:
    here = lockmod.this_host()
    return {**here, "pid": pid, "pid_start": lockmod.process_start(pid), **identity}


def test_a_holder_that_heartbeats_keeps_its_lock_past_the_age_limit(tmp_path):
    path = str(tmp_path / "lock")
    lockmod.take(path, "run-a", HOLDER, stale_after=1)
    stop = threading.Event()

    def heartbeat():
        while not stop.is_set():
            # Taking the lock again with the same token is the heartbeat (each deploy phase does it).
            lockmod.take(path, "run-a", HOLDER, stale_after=1)
            stop.wait(0.2)

    beater = threading.Thread(target=heartbeat)
    beater.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < 3:  # three times the age limit
            with pytest.raises(lockmod.LockHeld):
                lockmod.take(path, "run-b", HOLDER, stale_after=1)
            time.sleep(0.1)
    finally:
        stop.set()
        beater.join()
    # Once the heartbeats stop, the lock goes stale after stale_after and is taken over.
    time.sleep(1.3)
    taken = lockmod.take(path, "run-b", HOLDER, stale_after=1)
    assert taken["changed"] and taken["taken_over"]["user"] == "alice"


def test_the_holder_declares_its_own_stale_after(tmp_path):
    """A taker with a shorter stale_after does not cut a long-running holder's lock short."""
    path = str(tmp_path / "lock")
    lockmod.take(path, "backup-a", HOLDER, stale_after=21600)
    age(path, 7200)
    with pytest.raises(lockmod.LockHeld):
        lockmod.take(path, "backup-b", HOLDER, stale_after=3600)


def test_the_heartbeat_of_a_lock_held_for_hours(tmp_path):
    path = str(tmp_path / "lock")
    lockmod.take(path, "run-a", HOLDER, stale_after=3600)
    age(path, 5 * 3600)  # taken five hours ago...
    assert lockmod.heartbeat(path, "run-a")  # ...and alive now
    with pytest.raises(lockmod.LockHeld) as held:
        lockmod.take(path, "run-b", HOLDER, stale_after=3600)
    assert "last heartbeat" in held.value.msg
    assert not lockmod.heartbeat(path, "run-b")  # only the holder's token heartbeats


def test_keep_alive_heartbeats_during_a_long_step(tmp_path):
    path = str(tmp_path / "lock")
    lockmod.take(path, "dump-a", HOLDER, stale_after=1)
    with lockmod.keep_alive(path, "dump-a", stale_after=1):
        time.sleep(2.5)
        with pytest.raises(lockmod.LockHeld):
            lockmod.take(path, "dump-b", HOLDER, stale_after=1)


def _racer(path: str, token: str, barrier, results) -> None:
    # Each taker is preempted for a moment after each look at the lock (its note, its age), as on
    # a loaded host: whatever it decided from that look must still hold when it acts.
    random.seed(os.getpid())

    def slowed(look):
        def slow(*args, **kwargs):
            seen = look(*args, **kwargs)
            time.sleep(random.uniform(0, 0.05))
            return seen

        return slow

    for name in ("read_holder", "heartbeat_age", "lock_age"):  # lock_age: the age-only lock of 0.1
        if hasattr(lockmod, name):
            setattr(lockmod, name, slowed(getattr(lockmod, name)))
    barrier.wait()
    try:
        lockmod.take(path, token, HOLDER, stale_after=60)
        results.put(token)
    except lockmod.LockHeld:
        results.put(None)
    except Exception as exc:  # a taker that crashes on another's half-done takeover is a failure too
        results.put(f"error: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("round_", range(15))
def test_of_racing_takers_of_a_stale_lock_exactly_one_wins(tmp_path, round_):
    path = str(tmp_path / "lock")
    lockmod.take(path, "dead-run", HOLDER, stale_after=60)
    age(path, 3600)
    ctx = multiprocessing.get_context("fork")
    racers = 6
    barrier = ctx.Barrier(racers)
    results = ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(path, f"run-{i}", barrier, results)) for i in range(racers)]
    for proc in procs:
        proc.start()
    outcome = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join()
    assert not [t for t in outcome if t and t.startswith("error")], outcome
    winners = [t for t in outcome if t]
    assert len(winners) == 1, outcome
    assert lockmod.read_holder(path)["token"] == winners[0]


def test_a_dead_holder_process_on_this_boot_is_taken_over_at_once(tmp_path):
    path = str(tmp_path / "lock")
    pid = dead_pid()
    lockmod.take(path, "killed-run", {**HOLDER, "owner": owner(pid)}, stale_after=3600)
    taken = lockmod.take(path, "rerun", HOLDER, stale_after=3600)
    assert taken["changed"] and taken["taken_over"]["owner"]["pid"] == pid
    assert f"pid {pid} is gone" in taken["reason"]
    assert lockmod.read_holder(path)["token"] == "rerun"


def test_a_live_holder_process_is_never_taken_over(tmp_path):
    path = str(tmp_path / "lock")
    lockmod.take(path, "live-run", {**HOLDER, "owner": owner(os.getpid())}, stale_after=60)
    age(path, 7200)  # no heartbeat for two hours, but its process is alive here
    with pytest.raises(lockmod.LockHeld) as held:
        lockmod.take(path, "run-b", HOLDER, stale_after=60)
    assert f"pid {os.getpid()}" in held.value.msg and "alive" in held.value.msg


def test_a_reused_pid_is_not_the_holder(tmp_path):
    """The same pid with another start time is another process: the holder is gone."""
    path = str(tmp_path / "lock")
    note_owner = {**owner(os.getpid()), "pid_start": lockmod.process_start(os.getpid()) - 100}
    lockmod.take(path, "old-run", {**HOLDER, "owner": note_owner}, stale_after=3600)
    taken = lockmod.take(path, "rerun", HOLDER, stale_after=3600)
    assert taken["changed"] and "is gone" in taken["reason"]


def test_another_boot_id_means_the_pid_is_not_trusted(tmp_path):
    path = str(tmp_path / "lock")
    note_owner = owner(dead_pid(), boot_id="00000000-0000-0000-0000-000000000000")
    lockmod.take(path, "other-boot", {**HOLDER, "owner": note_owner}, stale_after=3600)
    with pytest.raises(lockmod.LockHeld):  # heartbeat fresh: held, whatever its pid
        lockmod.take(path, "run-b", HOLDER, stale_after=3600)
    # and a live pid from another boot does not keep a lock alive past its heartbeat
    path2 = str(tmp_path / "lock2")
    lockmod.take(path2, "other-boot", {**HOLDER, "owner": owner(os.getpid(), boot_id="x")}, stale_after=60)
    age(path2, 120)
    assert lockmod.take(path2, "run-b", HOLDER, stale_after=60)["changed"]


def test_another_host_means_the_pid_is_not_trusted(tmp_path):
    path = str(tmp_path / "lock")
    note_owner = owner(dead_pid(), hostname="elsewhere")
    lockmod.take(path, "remote", {**HOLDER, "owner": note_owner}, stale_after=3600)
    with pytest.raises(lockmod.LockHeld):
        lockmod.take(path, "run-b", HOLDER, stale_after=3600)


def test_take_over_names_the_generation_it_found_dead(tmp_path):
    """The controller's verdict (its own dead process): taken over only while that holder holds it."""
    path = str(tmp_path / "lock")
    lockmod.take(path, "killed", HOLDER, stale_after=3600)
    generation = lockmod.read_holder(path)["generation"]
    with pytest.raises(lockmod.LockHeld):
        lockmod.take(path, "rerun", HOLDER, stale_after=3600, take_over="not-" + generation)
    taken = lockmod.take(path, "rerun", HOLDER, stale_after=3600, take_over=generation, reason="pid 1 is gone")
    assert taken["changed"] and taken["taken_over"]["generation"] == generation
    # a second taker holding the same verdict finds another holder now
    with pytest.raises(lockmod.LockHeld):
        lockmod.take(path, "third", HOLDER, stale_after=3600, take_over=generation)


def test_release_only_by_the_holder_and_leaves_no_directory(tmp_path):
    path = str(tmp_path / "lock")
    lockmod.take(path, "run-a", HOLDER)
    assert not lockmod.release(path, "run-b")["changed"]
    assert lockmod.release(path, "run-a")["changed"]
    assert os.listdir(tmp_path) == []


def test_a_lock_left_by_the_old_code_is_read(tmp_path):
    """mkdir + holder.json without generation or heartbeat field: still a lock, stale by its age."""
    path = tmp_path / "lock"
    path.mkdir()
    (path / "holder.json").write_text('{"user": "bob", "token": "old"}')
    with pytest.raises(lockmod.LockHeld):
        lockmod.take(str(path), "run-b", HOLDER, stale_after=60)
    age(str(path), 120)
    assert lockmod.take(str(path), "run-b", HOLDER, stale_after=60)["taken_over"]["user"] == "bob"
