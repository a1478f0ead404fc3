# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The first step of a backup on the database host: pg_backup_dump's prepare option.

The backup directory (owner, mode: created or corrected), whether this backup id was published
already (then no lock is taken: a re-run changes nothing), otherwise the backup lock
<path>/.lock (module_utils/lock.py).
"""

from __future__ import annotations

import os
import pwd
import stat

from ansible_collections.opsbook.webstack.plugins.module_utils.lock import LockHeld, describe, release, take

# The argument spec of pg_backup_dump's prepare option.
PREPARE_SPEC = dict(
    path=dict(type="path", required=True),
    owner=dict(type="str", required=True),
    mode=dict(type="str", default="0700"),
    done=dict(type="str", required=True),
    lock=dict(
        type="dict",
        required=True,
        options=dict(
            token=dict(type="str", required=True, no_log=False),
            holder=dict(type="dict", default={}),
            stale_after=dict(type="int", default=21600),
        ),
    ),
)


class PrepareError(Exception):
    def __init__(self, msg: str, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


def check(params: dict) -> tuple[int, int, int]:
    """(uid, gid, mode) from the options; PrepareError names a bad one. Touches nothing."""
    path, done = params["path"], params["done"]
    if not done or "/" in done or done in (".", ".."):
        raise PrepareError(f"done must be a file name inside {path}, got {done!r}; nothing was changed")
    try:
        mode = int(params["mode"], 8)
    except ValueError:
        raise PrepareError(
            f"mode must be octal digits such as 0700, got {params['mode']!r}; nothing was changed"
        ) from None
    try:
        user = pwd.getpwnam(params["owner"])
    except KeyError:
        raise PrepareError(f"owner {params['owner']!r} is not a user of this host; nothing was changed") from None
    return user.pw_uid, user.pw_gid, mode


def ensure_directory(path: str, uid: int, gid: int, mode: int, check_mode: bool) -> str:
    """created, corrected or ok."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise PrepareError(f"path {path} exists and is not a directory; nothing was changed")
    if info is None:
        if not check_mode:
            os.makedirs(path, mode=mode)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        return "created"
    if (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (uid, gid, mode):
        return "ok"
    if not check_mode:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return "corrected"


def done_or_lock(params: dict, directory: str, check_mode: bool, warn) -> dict:
    """After ensure_directory: the result, with done, or the lock taken (not in check mode).

    A lock another run holds raises PrepareError naming the holder; a stale one is taken over
    and warn() names its old holder."""
    path = params["path"]
    lock_path = os.path.join(path, ".lock")
    result = {"changed": directory != "ok", "directory": directory, "done": False,
              "lock": {"taken": False, "path": lock_path}}  # fmt: skip
    if directory != "created" and os.path.lexists(os.path.join(path, params["done"])):
        result["done"] = True
        return result
    lock = params["lock"]
    try:
        taken = take(lock_path, lock["token"], lock["holder"], stale_after=lock["stale_after"], check_mode=check_mode)
    except LockHeld as held:
        raise PrepareError(held.msg, holder=held.holder, directory=directory, done=False) from None
    result["lock"].update(taken=not check_mode, holder=taken["holder"])
    result["changed"] = result["changed"] or taken["changed"]
    if "taken_over" in taken:
        result["lock"]["taken_over"] = taken["taken_over"]
        if not check_mode:
            warn(f"took over the stale lock {lock_path} of {describe(taken['taken_over'])}: {taken['reason']}")
    return result


def give_back(prepared: dict, token: str) -> bool:
    """Release the lock prepared took (a failed step after it); whether it was released."""
    if not prepared.get("lock", {}).get("taken"):
        return False
    try:
        released = release(prepared["lock"]["path"], token)["changed"]
    except OSError:
        return False
    prepared["lock"]["taken"] = not released
    return released
