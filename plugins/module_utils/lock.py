# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The opsbook lock: a directory holding a holder.json note that names who holds it.

Shared by run_lock (one deploy, rollback or restart per app, and the backup role's release of its
lock; the module was named deploy_lock before 0.2.0), pg_backup_dump through module_utils.prepare
(one backup per database), backup_publish and backup_retention (release it once publication and
retention are done, through module_utils.retention_apply). A run releases only the lock its token holds.

Liveness. A lock is not stale because it is old but because its holder stopped showing signs of
life:
- the heartbeat: the holder's note file's mtime. The holder refreshes it by taking the lock again
  with its token (every deploy phase does) or with keep_alive() during one long step (the dump).
  The lock is stale once no heartbeat came for the stale_after the holder declared in its note
  (a taker's own stale_after only counts for a note that declares none).
- the holder's process, when the note names one (owner: hostname, boot_id, pid namespace, pid and
  the pid's start time) and the machine looking at it is that same machine, boot and pid namespace:
  a live process keeps the lock whatever its heartbeat; a gone one (or the pid now running another
  process) frees it at once. On another host, boot or pid namespace the pid says nothing and only
  the heartbeat counts. The run_lock action plugin applies the same test on the controller,
  where the ansible-playbook process that holds a deploy lock runs, and names the dead holder's
  generation in take_over.

Atomicity. A new lock is a directory filled under a private name and renamed into place (of two
creators one rename succeeds; the note is there from the first instant). Every change to an
existing lock (heartbeat, takeover, release) happens under flock() of <lock>/.mutex and re-reads
the note first, so of two takers of one stale lock the second one sees the first one's fresh note
and finds the lock held. The kernel drops the flock of a process that dies, so there is no second
lock to go stale. A release renames the directory away before removing it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import socket
import threading
import time
from datetime import datetime, timezone

# Modules run on Python 3.9 targets: datetime.UTC is 3.11+.
UTC = timezone.utc  # noqa: UP017

HOLDER = "holder.json"
MUTEX = ".mutex"


class LockHeld(Exception):
    """Another run holds the lock and it did not come free in time."""

    def __init__(self, msg: str, holder: dict, waited: float):
        super().__init__(msg)
        self.msg = msg
        self.holder = holder
        self.waited = waited


# --- who is this, and is that process alive ---------------------------------------------------


def _read(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read().strip()


def this_host() -> dict:
    """What identifies this machine, boot and pid namespace: a pid means something only inside them."""
    identity = {"hostname": socket.gethostname(), "boot_id": "", "pidns": ""}
    with contextlib.suppress(OSError):
        identity["boot_id"] = _read("/proc/sys/kernel/random/boot_id")
    with contextlib.suppress(OSError):
        identity["pidns"] = os.readlink("/proc/self/ns/pid")
    return identity


def process_start(pid: int) -> int | None:
    """The start time of pid (clock ticks since boot, /proc/<pid>/stat field 22), None when gone."""
    try:
        stat = _read(f"/proc/{pid}/stat")
    except (OSError, UnicodeDecodeError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_owner(pid: int | None = None) -> dict:
    """The owner entry of a holder note for process pid (default: this one) on this machine."""
    pid = os.getpid() if pid is None else pid
    return {**this_host(), "pid": pid, "pid_start": process_start(pid)}


def owner_alive(owner: dict | None, here: dict | None = None) -> tuple[bool | None, str]:
    """(True alive | False gone | None cannot tell here, why). `here` is this_host() by default."""
    if not owner or not owner.get("pid"):
        return None, "the holder names no process"
    here = here or this_host()
    for key in ("hostname", "boot_id", "pidns"):
        if not here.get(key) or owner.get(key) != here.get(key):
            return None, f"its process runs elsewhere ({key} differs), so its pid says nothing here"
    pid = int(owner["pid"])
    start = process_start(pid)
    if start is None:
        return False, f"pid {pid} is gone"
    if owner.get("pid_start") is not None and start != owner["pid_start"]:
        return False, f"pid {pid} is gone (that pid is another process now)"
    return True, f"pid {pid} on {owner['hostname']} is alive"


# --- the note ---------------------------------------------------------------------------------


def read_holder(path: str) -> dict | None:
    """The holder note, {} when the lock exists without a readable note, None when there is no lock."""
    if not os.path.isdir(path):
        return None
    try:
        with open(os.path.join(path, HOLDER), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {} if os.path.isdir(path) else None


def heartbeat_age(path: str, note: dict | None = None) -> float:
    """Seconds since the last heartbeat: the note's mtime. A note without a generation was written
    by the age-only lock of opsbook 0.x, which never heartbeats: its age is the directory's, as then."""
    note = read_holder(path) if note is None else note
    targets = [os.path.join(path, HOLDER), path] if note and note.get("generation") else [path]
    for target in targets:
        try:
            return max(0.0, time.time() - os.stat(target).st_mtime)
        except OSError:
            continue
    return 0.0


def describe(holder: dict) -> str:
    if not holder:
        return "an unknown holder (no holder note)"
    text = "{user}@{controller} since {since} (release {release}, {action})".format(
        user=holder.get("user", "?"),
        controller=holder.get("controller", "?"),
        since=holder.get("since", "?"),
        release=holder.get("release", "?"),
        action=holder.get("action", "deploy"),
    )
    owner = holder.get("owner") or {}
    if owner.get("pid"):
        text += f", pid {owner['pid']} on {owner.get('hostname', '?')}"
    return text


def public(holder: dict) -> dict:
    """The note without the token (the token is what lets a run release the lock)."""
    return {k: v for k, v in holder.items() if k != "token"}


def assess(path: str, note: dict, stale_after: int, here: dict | None = None) -> tuple[bool, str]:
    """(stale, why) for the lock at path whose note is `note`."""
    alive, why = owner_alive(note.get("owner"), here)
    if alive is True:
        return False, why
    if alive is False:
        return True, why
    limit = note.get("stale_after") or stale_after
    age = heartbeat_age(path, note)
    if age > limit:
        return True, f"no heartbeat for {int(age)} s (stale after {limit} s)"
    return False, f"last heartbeat {int(age)} s ago (stale after {limit} s without one)"


@contextlib.contextmanager
def _mutex(path: str):
    """flock() of <path>/.mutex; yields False when the lock directory is gone."""
    mutex = os.path.join(path, MUTEX)
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW  # flock needs no write access
    try:
        try:
            fd = os.open(mutex, flags)
        except FileNotFoundError:
            # The first change to this lock. Creating the file touches the directory's mtime, which
            # is the age of a note from opsbook 0.1 (no heartbeat): keep it.
            before = os.stat(path)
            fd = os.open(mutex, flags | os.O_CREAT, 0o644)
            with contextlib.suppress(OSError):
                os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    except FileNotFoundError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A release may have renamed the directory away while we waited: then this is not the lock.
        try:
            ours = os.path.samestat(os.fstat(fd), os.stat(os.path.join(path, MUTEX)))
        except FileNotFoundError:
            ours = False
        yield ours
    finally:
        os.close(fd)


def _write_note(directory: str, note: dict) -> None:
    tmp = os.path.join(directory, f"{HOLDER}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(note, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(tmp, os.path.join(directory, HOLDER))


def _create(path: str, note: dict) -> bool:
    """A new lock, whole or not at all: filled under a private name, renamed into place."""
    parent = os.path.dirname(path) or "/"
    os.makedirs(parent, mode=0o755, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{secrets.token_hex(6)}.new")
    os.mkdir(tmp, 0o700)
    try:
        _write_note(tmp, note)
        try:
            os.rename(tmp, path)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                return False
            raise
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def heartbeat(path: str, token: str) -> bool:
    """Refresh the heartbeat of the lock token holds; False when token does not hold it (any more)."""
    with _mutex(path) as here:
        if not here:
            return False
        note = read_holder(path)
        if not note or note.get("token") != token:
            return False
        os.utime(os.path.join(path, HOLDER))
        return True


@contextlib.contextmanager
def keep_alive(path: str, token: str, *, stale_after: int, interval: float | None = None):
    """Heartbeat from a thread while the body runs (one long step such as a dump).

    Yields a threading.Event that is set if the lock was lost (taken over) meanwhile."""
    interval = interval if interval is not None else max(0.1, min(60.0, stale_after / 4))
    stop = threading.Event()
    lost = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                if not heartbeat(path, token):
                    lost.set()
                    return
            except OSError:
                continue  # a passing I/O error; the next beat tries again

    thread = threading.Thread(target=beat, name="opsbook-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join()


def take(
    path: str,
    token: str,
    holder: dict,
    *,
    wait_timeout: int = 0,
    wait_timeout_name: str = "deploy_lock_timeout",
    stale_after: int = 3600,
    check_mode: bool = False,
    take_over: str | None = None,
    reason: str | None = None,
    here: dict | None = None,
) -> dict:
    """Take the lock for token, waiting up to wait_timeout s for another holder; raises LockHeld.

    Returns changed, holder (public note), waited and, when a stale lock was taken over, taken_over
    and reason. Taking a lock this token holds already is its heartbeat and changes nothing.
    take_over: the generation of a holder the caller knows is dead (its process is gone on the
    caller's machine); taken over while that holder still holds the lock, whatever its heartbeat.
    In check mode nothing is touched and the result says what would happen (a lock held by another
    run still raises: so would the run).
    """
    note = dict(holder)
    note.update(
        token=token,
        generation=secrets.token_hex(8),
        since=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        stale_after=stale_after,
    )
    started = time.monotonic()
    deadline = started + wait_timeout

    def result(changed: bool, held: dict, **extra) -> dict:
        return {"changed": changed, "holder": public(held), "waited": round(time.monotonic() - started, 1), **extra}

    while True:
        current = read_holder(path)
        if current is None:
            if check_mode or _create(path, note):
                return result(True, note)
            continue  # someone else created it between our look and our rename
        if check_mode:
            if current.get("token") == token:
                return result(False, current)
            stale, why = assess(path, current, stale_after, here)
            if stale or (take_over and current.get("generation") == take_over):
                return result(True, note, taken_over=public(current), reason=reason or why)
        else:
            with _mutex(path) as locked:
                if not locked:
                    continue  # released or renamed away meanwhile: look again
                current = read_holder(path)
                if current is None:
                    continue
                if current.get("token") == token:
                    os.utime(os.path.join(path, HOLDER))
                    return result(False, current)
                stale, why = assess(path, current, stale_after, here)
                if take_over and current.get("generation") == take_over:
                    stale, why = True, reason or "its process is gone on the controller"
                if stale:
                    _write_note(path, note)
                    return result(True, note, taken_over=public(current), reason=why)
        if time.monotonic() >= deadline:
            waited = f" Waited {wait_timeout} s ({wait_timeout_name})." if wait_timeout else ""
            _stale, why = assess(path, current, stale_after, here)
            raise LockHeld(
                f"Another run holds the lock {path}: {describe(current)}; {why}.{waited} "
                "If that run is dead, its lock is taken over once it is stale; a process that is "
                "alive is never taken over.",
                public(current),
                round(time.monotonic() - started, 1),
            )
        time.sleep(1)


def release(path: str, token: str, *, force: bool = False, check_mode: bool = False) -> dict:
    """Release the lock if token holds it (or force); a lock held by another run is left alone."""
    current = read_holder(path)
    if current is None:
        return {"changed": False, "holder": {}, "waited": 0.0}
    if current.get("token") != token and not force:
        return {"changed": False, "holder": public(current), "waited": 0.0, "msg": "held by another run; left alone"}
    if check_mode:
        return {"changed": True, "holder": {}, "waited": 0.0}
    gone = f"{path}.{secrets.token_hex(6)}.released"
    with _mutex(path) as locked:
        current = read_holder(path) if locked else None
        if current is None:
            return {"changed": False, "holder": {}, "waited": 0.0}
        if current.get("token") != token and not force:
            return {
                "changed": False,
                "holder": public(current),
                "waited": 0.0,
                "msg": "held by another run; left alone",
            }
        os.rename(path, gone)
    shutil.rmtree(gone, ignore_errors=True)
    return {"changed": True, "holder": {}, "waited": 0.0}
