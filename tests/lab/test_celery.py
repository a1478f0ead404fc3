"""celery.yml on the lab: report, threshold check, drain and resume, requeue of a failed task, purge of failed tasks."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from lab_helpers import ansible_playbook, as_app, lab_exec

pytestmark = pytest.mark.lab


def celery_call(task: str, args: list) -> None:
    """Send a task the way an operator would, with the app's own environment, on app1."""
    as_app("app1", "/srv/journal/current/venv/bin/celery", "-A", "journal", "call", task, "--args", json.dumps(args))


def psql(sql: str) -> str:
    return lab_exec("db1", "psql", "-d", "journal", "-tAc", sql, user="postgres").stdout.strip()


def results(status: str) -> int:
    return int(psql(f"SELECT count(*) FROM django_celery_results_taskresult WHERE status = '{status}'"))


def stats(stdout: str) -> dict:
    """The set_stats block that ANSIBLE_SHOW_CUSTOM_STATS prints."""
    return json.loads(stdout.split("RUN:", 1)[1].strip().splitlines()[0])


def test_report_sees_every_worker_and_queue(lab, tmp_path):
    report = tmp_path / "celery.json"
    result, _ = ansible_playbook("celery.yml", "-e", f"celery_report_path={report}")
    assert result.returncode == 0, result.stdout[-4000:]
    summary = json.loads(report.read_text())["summary"]
    assert summary["workers_answered"] == 2 and summary["unknown_workers"] == []
    assert "celery" in summary["queue_depth"]
    assert stats(result.stdout)["celery"]["workers_expected"] == 2
    assert "lab-redis-password" not in result.stdout


def test_check_fails_when_a_worker_is_down(lab):
    lab_exec("app2", "systemctl", "stop", "journal-worker")
    try:
        result, _ = ansible_playbook("celery.yml", "-e", "celery_action=check")
    finally:
        lab_exec("app2", "systemctl", "start", "journal-worker")
    assert result.returncode != 0
    assert "min_workers" in result.stdout and "worker@app2" in result.stdout
    for _ in range(30):  # the worker is back before the next test
        if ansible_playbook("celery.yml", "-e", "celery_action=check")[0].returncode == 0:
            break
        time.sleep(1)
    else:
        pytest.fail("worker@app2 did not come back")


def test_drain_waits_for_the_running_task_then_resume(lab):
    celery_call("articles.tasks.slow_task", [4])
    started = time.monotonic()
    result, _ = ansible_playbook("celery.yml", "-e", "celery_action=drain", "-e", "celery_drain_timeout=60")
    assert result.returncode == 0, result.stdout[-4000:]
    assert stats(result.stdout)["celery_drained"] is True
    assert time.monotonic() - started >= 3  # it waited for the task
    report, _ = ansible_playbook("celery.yml")
    consumers = json.loads(report.stdout.split("RUN:", 1)[1].strip().splitlines()[0])
    assert consumers["celery"]["workers_answered"] == 2
    resumed, _ = ansible_playbook("celery.yml", "-e", "celery_action=resume")
    assert resumed.returncode == 0, resumed.stdout[-4000:]


def test_requeue_resends_a_failed_task(lab):
    celery_call("certificates.tasks.generate_certificate", ["00000000-0000-0000-0000-000000000000"])
    time.sleep(3)  # the worker runs it and records the failure
    check, _ = ansible_playbook(
        "celery.yml", "--check", "-e", "celery_action=requeue", "-e", "celery_requeue_since=10m"
    )
    assert check.returncode == 0, check.stdout[-4000:]
    result, _ = ansible_playbook("celery.yml", "-e", "celery_action=requeue", "-e", "celery_requeue_since=10m")
    assert result.returncode == 0, result.stdout[-4000:]
    assert len(stats(result.stdout)["celery_requeued"]) >= 1
    assert "lab-db-password" not in result.stdout


def test_purge_failed_needs_the_database_name_and_counts(lab):
    before = results("FAILURE")
    for _ in range(3):  # certificates that do not exist: each generation fails on the worker
        celery_call("certificates.tasks.generate_certificate", [str(uuid.uuid4())])
    for _ in range(60):
        if results("FAILURE") == before + 3:
            break
        time.sleep(0.5)
    failed, succeeded = results("FAILURE"), results("SUCCESS")
    assert failed == before + 3, "the three failures were not recorded"

    refused, _ = ansible_playbook("celery.yml", "-e", "celery_action=purge_failed")
    assert refused.returncode != 0
    assert "set celery_purge_confirm=journal to do it (celery_purge_confirm is '')" in refused.stdout
    assert results("FAILURE") == failed, "a refused purge deleted rows"

    confirm = ("-e", "celery_action=purge_failed", "-e", "celery_purge_confirm=journal")
    check, _ = ansible_playbook("celery.yml", "--check", *confirm)
    assert check.returncode == 0, check.stdout[-4000:]
    expected = {"failed_before": failed, "purged": failed, "failed_after": failed, "older_than": ""}
    assert stats(check.stdout)["celery_purge"] == expected
    assert results("FAILURE") == failed, "check mode deleted rows"

    result, recap = ansible_playbook("celery.yml", *confirm)
    assert result.returncode == 0, result.stdout[-4000:]
    expected = {"failed_before": failed, "purged": failed, "failed_after": 0, "older_than": ""}
    assert stats(result.stdout)["celery_purge"] == expected
    assert results("FAILURE") == 0 and results("SUCCESS") == succeeded
    assert "lab-db-password" not in result.stdout + refused.stdout

    again, recap = ansible_playbook("celery.yml", *confirm)
    assert again.returncode == 0 and stats(again.stdout)["celery_purge"]["purged"] == 0
    assert sum(recap.values()) == 0, f"a purge with nothing to purge changed something: {recap}"
