"""What is not built for app_runtime compose yet is refused, naming it, before anything changes: a restore that
would switch the code to the backup's release; a restore (its stop and start steps are the compose project's) and
a drill are not refused, nor are restart.yml and celery.yml (molecule/compose runs them)."""

from __future__ import annotations

import pytest

from helpers import playbook_on_localhost

PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: opsbook.webstack.{role}
        tasks_from: {tasks}
"""
BASE = {
    "app_name": "journal", "app_runtime": "compose", "app_compose_file": "compose.yml.j2",
    "app_db_name": "journal", "app_db_user": "journal", "app_root": "/srv/journal", "restore_backup_id": "x",
}  # fmt: skip


@pytest.mark.parametrize(
    ("role", "tasks", "extra", "message"),
    [
        (
            "restore",
            "check",
            {"restore_mode": "restore", "restore_release_mismatch": "switch"},
            "restore_release_mismatch=switch is not available with app_runtime compose yet",
        ),
    ],
)
def test_refused_under_compose(tmp_path, role, tasks, extra, message):
    result = playbook_on_localhost(tmp_path, PLAY.format(role=role, tasks=tasks), {**BASE, **extra})
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    assert "Nothing was" in result.stdout


@pytest.mark.parametrize("mode", ["drill", "restore"])
def test_a_restore_or_drill_is_not_refused_for_compose(tmp_path, mode):
    result = playbook_on_localhost(
        tmp_path, PLAY.format(role="restore", tasks="check"), {**BASE, "restore_mode": mode, "restore_confirm": True}
    )
    assert "is not available with app_runtime compose" not in result.stdout
    assert "Under compose, the code is not switched to the backup's release yet" in result.stdout  # ran, passed
