"""What is not built for app_runtime compose yet is refused, naming it, before anything changes: restart.yml
(systemd units), celery.yml (a release virtualenv on the host) and a real restore (its stop and start steps);
a restore drill is not refused."""

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
        ("deploy", "restart", {}, "restart.yml restarts systemd units; under app_runtime compose"),
        ("celery", "input", {}, "celery.yml does not inspect or control an app under app_runtime compose"),
        (
            "restore",
            "check",
            {"restore_mode": "restore"},
            "restore.yml does not restore an app under app_runtime compose",
        ),
    ],
)
def test_refused_under_compose(tmp_path, role, tasks, extra, message):
    result = playbook_on_localhost(tmp_path, PLAY.format(role=role, tasks=tasks), {**BASE, **extra})
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    assert "Nothing was" in result.stdout


def test_a_restore_drill_is_not_refused_for_compose(tmp_path):
    result = playbook_on_localhost(
        tmp_path, PLAY.format(role="restore", tasks="check"), {**BASE, "restore_mode": "drill"}
    )
    assert "restore.yml does not restore an app under app_runtime compose" not in result.stdout
    assert "An app under compose is restored by hand for now" in result.stdout  # the check ran, and passed
