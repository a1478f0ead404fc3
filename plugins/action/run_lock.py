# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller side of opsbook.webstack.run_lock.

The lock lives on a target host but its holder is the ansible-playbook process on a controller.
This plugin records that process as the lock's owner and, when the lock is held by a process of
this same controller (hostname, boot id, pid namespace) that is gone (SIGKILL, a crash), takes it
over at once, naming that holder's generation so a lock another run took meanwhile is left alone.
A holder on another controller is judged by its heartbeat alone, on the target.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase
from ansible_collections.opsbook.webstack.plugins.module_utils.lock import owner_alive, process_owner

MODULE = "opsbook.webstack.run_lock"


def _cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return None


def playbook_pid() -> int:
    """The ansible-playbook process: the parent of this forked worker (same command line)."""
    pid = os.getpid()
    while True:
        parent = os.getppid() if pid == os.getpid() else _parent(pid)
        if not parent or parent <= 1 or _cmdline(parent) != _cmdline(pid):
            return pid
        pid = parent


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
        return int(stat[stat.rfind(")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        args = dict(self._task.args)
        if args.get("state", "present") != "present":
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
            return result
        args.setdefault("owner", process_owner(playbook_pid()))
        wait = int(args.get("wait_timeout") or 0)
        # First without waiting: a dead holder of this controller must not cost the whole wait.
        out = self._execute_module(module_name=MODULE, module_args={**args, "wait_timeout": 0}, task_vars=task_vars)
        holder = out.get("holder") or {}
        if out.get("failed") and holder.get("generation") and not args.get("take_over"):
            alive, why = owner_alive(holder.get("owner"))
            if alive is False:
                out = self._execute_module(
                    module_name=MODULE,
                    module_args={**args, "wait_timeout": 0, "take_over": holder["generation"], "take_over_reason": why},
                    task_vars=task_vars,
                )
            elif wait:
                out = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            if out.get("failed") and alive is True:
                out["msg"] = f"{out.get('msg', '')} Its process runs on this controller and is alive ({why})."
        elif out.get("failed") and wait:
            out = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        result.update(out)
        return result
