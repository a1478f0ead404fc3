# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The opsbook lock: a directory (mkdir is atomic) holding a holder.json note that names who holds it.

Shared by deploy_lock (one deploy per app), backup_prepare (take one backup per database),
backup_publish and backup_rotate (release it once publication and rotation are done, through
module_utils.rotation). A run releases only the lock its token holds.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime

HOLDER = "holder.json"


class LockHeld(Exception):
    """Another run holds the lock and it did not come free in time."""

    def __init__(self, msg: str, holder: dict, waited: float):
        super().__init__(msg)
        self.msg = msg
        self.holder = holder
        self.waited = waited


def read_holder(path: str) -> dict | None:
    """The holder note, {} when the lock exists without a readable note, None when there is no lock."""
    if not os.path.isdir(path):
        return None
    try:
        with open(os.path.join(path, HOLDER), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def lock_age(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return 0.0


def describe(holder: dict) -> str:
    if not holder:
        return "an unknown holder (no holder note)"
    return "{user}@{controller} since {since} (release {release}, {action})".format(
        user=holder.get("user", "?"),
        controller=holder.get("controller", "?"),
        since=holder.get("since", "?"),
        release=holder.get("release", "?"),
        action=holder.get("action", "deploy"),
    )


def public(holder: dict) -> dict:
    """The note without the token (the token is what lets a run release the lock)."""
    return {k: v for k, v in holder.items() if k != "token"}


def _try_take(path: str, note: dict) -> bool:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return False
    tmp = os.path.join(path, HOLDER + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(note, handle)
    os.rename(tmp, os.path.join(path, HOLDER))
    return True


def take(
    path: str,
    token: str,
    holder: dict,
    *,
    wait_timeout: int = 0,
    wait_timeout_name: str = "deploy_lock_timeout",
    stale_after: int = 3600,
    check_mode: bool = False,
) -> dict:
    """Take the lock for token, waiting up to wait_timeout s for another holder; raises LockHeld.

    Returns changed, holder (public note), waited and, when a stale lock was taken over, taken_over.
    Taking a lock this token holds already changes nothing. In check mode nothing is touched and
    the result says what would happen (a lock held by another run still raises: so would the run).
    """
    note = dict(holder)
    note["token"] = token
    note["since"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = time.monotonic()
    deadline = started + wait_timeout
    taken_over = None
    while True:
        current = read_holder(path)
        if current is not None and current.get("token") == token:
            return {"changed": False, "holder": public(current), "waited": 0.0}
        if current is not None and lock_age(path) > stale_after:
            taken_over = public(current)
            if check_mode:
                return {"changed": True, "holder": public(note), "taken_over": taken_over, "waited": 0.0}
            shutil.rmtree(path, ignore_errors=True)
            current = None
        if current is None:
            if check_mode:
                return {"changed": True, "holder": public(note), "waited": 0.0}
            os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
            if _try_take(path, note):
                result = {"changed": True, "holder": public(note), "waited": round(time.monotonic() - started, 1)}
                if taken_over is not None:
                    result["taken_over"] = taken_over
                return result
            continue  # someone else took it between our look and our mkdir
        if time.monotonic() >= deadline:
            waited = f" Waited {wait_timeout} s ({wait_timeout_name})." if wait_timeout else ""
            raise LockHeld(
                f"Another run holds the lock {path}: {describe(current)}.{waited} It becomes stale after "
                f"{stale_after} s; if that run is dead, remove the directory.",
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
    if not check_mode:
        shutil.rmtree(path)
    return {"changed": True, "holder": {}, "waited": 0.0}
