"""playbooks/celery.yml with celery_backend=rq, run by ansible-playbook against a real Redis and `rq worker`.

The lab's sample app runs Celery, so the RQ side of the playbook is proven here: one local
host in every group, the "release" Python being this venv's (it has rq).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from rq import Queue
from rq.registry import FailedJobRegistry

import helpers

FIXTURES = f"{__package__}.celery_fixtures" if __package__ else "celery_fixtures"
pytest.register_assert_rewrite(FIXTURES)
pytest_plugins = [FIXTURES]

from celery_fixtures import start_rq_worker, wait_until  # noqa: E402

QUEUE = "q_playbook"
ROOT = helpers.REPO_ROOT


@pytest.fixture(scope="module")
def inventory(rq_redis, tmp_path_factory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("rq-playbook")
    venv = base / "app" / "current" / "venv" / "bin"
    venv.mkdir(parents=True)
    # A wrapper, not a link: a link outside the venv would lose the venv's site-packages.
    (venv / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv / "python").chmod(0o755)
    inv = base / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    groups = {g: {"hosts": {"ctl": None}} for g in ("lb", "app", "worker", "scheduler", "db", "broker")}
    hosts = {"all": {"hosts": {"ctl": {"ansible_connection": "local"}}, "children": groups}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    app = yaml.safe_load((ROOT / "inventories/lab/group_vars/all/app.yml").read_text())
    app.update(
        app_root=str(base / "app"),
        app_redis_host=rq_redis.redis.host,
        app_redis_port=rq_redis.redis.port,
        app_redis_db=rq_redis.db,
    )
    (inv / "group_vars/all/app.yml").write_text(yaml.safe_dump(app))
    vault = yaml.safe_load((ROOT / "inventories/lab/group_vars/all/vault.yml").read_text())
    vault["vault_app_redis_password"] = rq_redis.password
    (inv / "group_vars/all/vault.yml").write_text(yaml.safe_dump(vault))
    worker = start_rq_worker("pbw", [QUEUE], rq_redis, base)
    try:
        yield inv
    finally:
        worker.stop()


def playbook(inventory: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_SHOW_CUSTOM_STATS="1", PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    result = subprocess.run(
        [Path(sys.executable).parent / "ansible-playbook", "-i", inventory, ROOT / "playbooks/celery.yml"]
        + ["-e", "celery_backend=rq", "-e", json.dumps({"celery_queues": [QUEUE]}), *extra],
        cwd=inventory.parent,  # not the repo: no ansible.cfg, as in AWX
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    found = re.search(r"RUN: (\{.*\})", result.stdout)
    return result, json.loads(found.group(1)) if found else {}


def test_report_sees_the_worker_and_the_queue(inventory, rq_redis):
    result, stats = playbook(inventory)
    assert result.returncode == 0, result.stdout[-4000:]
    assert stats["rq"]["workers"] == ["pbw"]
    assert stats["rq"]["queue_depth"] == {QUEUE: 0}
    assert rq_redis.password not in result.stdout + result.stderr


def test_check_fails_naming_the_threshold(inventory):
    result, _ = playbook(inventory, "-e", "celery_action=check", "-e", "celery_min_workers=2")
    assert result.returncode != 0
    assert "min_workers" in result.stdout


def test_requeue_runs_a_failed_job_again(inventory, rq_redis):
    client = rq_redis.client()
    key = f"flaky-{uuid.uuid4().hex}"
    job = Queue(QUEUE, connection=client).enqueue("rq_testjobs.flaky", key)
    wait_until(lambda: job.get_status(refresh=True) == "failed", 30, "the first run to fail")
    check, _ = playbook(inventory, "--check", "-e", "celery_action=requeue", "-e", "celery_requeue_since=10m")
    assert check.returncode == 0, check.stdout[-4000:]
    assert client.get(key) == b"1"  # check mode sent nothing
    result, stats = playbook(inventory, "-e", "celery_action=requeue", "-e", "celery_requeue_since=10m")
    assert result.returncode == 0, result.stdout[-4000:]
    assert stats["rq"]["requeued"] >= 1
    wait_until(lambda: client.get(key) == b"2", 30, "the requeued job to run again")
    assert rq_redis.password not in result.stdout + result.stderr


def test_purge_failed_needs_the_queue_name_and_counts(inventory, rq_redis):
    client = rq_redis.client()
    jobs = [Queue(QUEUE, connection=client).enqueue("rq_testjobs.fail", f"purge {i}") for i in range(3)]
    registry = FailedJobRegistry(QUEUE, connection=client)
    wait_until(lambda: all(client.zscore(registry.key, j.id) is not None for j in jobs), 30, "three failed jobs")
    failed = registry.get_job_count(cleanup=False)
    assert failed >= 3

    refused, _ = playbook(inventory, "-e", "celery_action=purge_failed", "-e", "celery_purge_confirm=yes")
    assert refused.returncode != 0
    assert f"set celery_purge_confirm={QUEUE} to do it (celery_purge_confirm is 'yes')" in refused.stdout
    assert registry.get_job_count(cleanup=False) == failed, "a refused purge removed jobs"

    confirm = ("-e", "celery_action=purge_failed", "-e", f"celery_purge_confirm={QUEUE}")
    # A misspelt age filter would purge every failed job: validate refuses it first.
    misspelt, _ = playbook(inventory, *confirm, "-e", "celery_purge_older_then=7d")
    assert misspelt.returncode != 0
    assert "Unknown variable 'celery_purge_older_then' given with -e: did you mean 'celery_purge_older_than'" in (
        misspelt.stdout
    )
    assert registry.get_job_count(cleanup=False) == failed, "a refused purge removed jobs"

    check, stats = playbook(inventory, "--check", *confirm)
    assert check.returncode == 0, check.stdout[-4000:]
    assert stats["celery_purge"] == {
        "failed_before": failed,
        "purged": failed,
        "failed_after": failed,
        "older_than": "",
    }
    assert registry.get_job_count(cleanup=False) == failed, "check mode removed jobs"

    result, stats = playbook(inventory, *confirm)
    assert result.returncode == 0, result.stdout[-4000:]
    assert stats["celery_purge"] == {"failed_before": failed, "purged": failed, "failed_after": 0, "older_than": ""}
    assert stats["rq"]["purge"] == {QUEUE: {"before": failed, "purged": failed, "after": 0}}
    assert registry.get_job_count(cleanup=False) == 0
    assert not any(client.exists(f"rq:job:{j.id}") for j in jobs)
    assert rq_redis.password not in result.stdout + result.stderr
