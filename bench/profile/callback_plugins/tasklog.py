"""Profiling aid, not part of the collection: one JSON line per task result and loop item.

    ANSIBLE_CALLBACK_PLUGINS=bench/profile/callback_plugins \
    ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks,tasklog \
    OPSBOOK_TASKLOG_DIR=/tmp/tasklog  .ci/run          # or any ansible-playbook
    .venv/bin/python bench/profile/tasks.py /tmp/tasklog

Each ansible-playbook process appends to <dir>/<pid>-<time>.jsonl: playbook, role, task, action,
host, status (ok, changed, skipped, failed, item_ok, ...), whether it was delegated, and the
seconds from the task's start on that host. Nothing is printed; secrets are never recorded
(no arguments, no results).
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tasklog"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._started: dict = {}
        self._out = None
        self._playbook = "?"

    def _write(self, record: dict) -> None:
        if self._out is None:
            directory = os.environ.get("OPSBOOK_TASKLOG_DIR", "/tmp/opsbook-tasklog")
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, f"{os.getpid()}-{int(time.time())}.jsonl")
            self._out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (open for the run)
        self._out.write(json.dumps(record) + "\n")

    def v2_playbook_on_start(self, playbook) -> None:
        self._playbook = os.path.basename(playbook._file_name)

    def v2_runner_on_start(self, host, task) -> None:
        self._started[(host.get_name(), task._uuid)] = time.time()

    def _record(self, result, status: str, item: bool = False) -> None:
        task, host = result._task, result._host.get_name()
        started = self._started.get((host, task._uuid))
        self._write(
            {
                "pb": self._playbook,
                "role": task._role.get_name() if task._role else "",
                "task": task.get_name(),
                "action": task.action,
                "host": host,
                "status": status,
                "item": item,
                "delegate": bool(task.delegate_to),
                "dur": round(time.time() - started, 3) if started and not item else None,
            }
        )

    def v2_runner_on_ok(self, result) -> None:
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result) -> None:
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result) -> None:
        self._record(result, "unreachable")

    def v2_runner_item_on_ok(self, result) -> None:
        self._record(result, "item_ok", item=True)

    def v2_runner_item_on_failed(self, result) -> None:
        self._record(result, "item_failed", item=True)

    def v2_runner_item_on_skipped(self, result) -> None:
        self._record(result, "item_skipped", item=True)
