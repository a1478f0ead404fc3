# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Processes that run beside the module while it works with their pipes.

AnsibleModule.run_command runs one command to its end. pg_backup_dump reads pg_dump's archive
as it is written and feeds it to a pg_restore that runs at the same time, so it starts both here.
as_user runs a part of a module as another user (as become_user would) in a child process.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import traceback


def start(argv: list[str], **options) -> subprocess.Popen:
    """subprocess.Popen(argv, **options): argv is a list the caller builds, never a shell string."""
    return subprocess.Popen(argv, **options)  # noqa: S603


def drop_privileges(uid: int, gid: int) -> None:
    """Run as uid from here on (primary group gid and the user's supplementary groups), as
    become_user would: the dump's files are the user's, and peer authentication sees the user."""
    user = pwd.getpwuid(uid)
    os.initgroups(user.pw_name, gid)
    os.setgid(gid)
    os.setuid(uid)
    os.environ.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    os.chdir("/")  # root's working directory may not be readable by the user


def as_user(uid: int, gid: int, body, result: dict, warnings: list, expected=()) -> tuple[bool, dict]:
    """Run body() in a child process as uid; (succeeded, the result's fields).

    A child, not the module's own process: Ansible's module code loads parts of itself lazily
    from a payload only root can read, and the module answers Ansible as root. The child sends
    plain JSON through a pipe. An exception of the `expected` classes carries the fields to fail
    with (its `fields`); any other is reported with its traceback."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            try:
                drop_privileges(uid, gid)
                payload = {"ok": True, "fields": body()}
            except expected as exc:
                payload = {"ok": False, "fields": {**result, **exc.fields}}
            payload["warnings"] = warnings
            data = json.dumps(payload, default=str)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the module
            fields = {**result, "msg": f"the dump as uid {uid} failed: {exc}", "exception": traceback.format_exc()}
            data = json.dumps({"ok": False, "fields": fields, "warnings": []}, default=str)
        with os.fdopen(write_fd, "w") as pipe:
            pipe.write(data)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        data = pipe.read()
    _pid, status = os.waitpid(pid, 0)
    if not data:
        return False, {
            **result,
            "msg": f"the dump's process as uid {uid} ended without a result (wait status {status})",
        }
    payload = json.loads(data)
    warnings[:] = payload["warnings"]
    return payload["ok"], payload["fields"]
