"""The celery role's entry points, read offline: playbooks/celery.yml accepts exactly the actions that
are entry points, each has a task file and a spec sharing main's options, and main runs the same files.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "celery"


def specs() -> dict:
    return yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]


def playbook_tasks() -> list[dict]:
    plays = yaml.safe_load((ROOT / "playbooks" / "celery.yml").read_text(encoding="utf-8"))
    return next(p for p in plays if p.get("name") == "Celery workers and queues")["tasks"]


def test_every_action_is_an_entry_point_with_a_task_file_and_the_shared_options():
    spec = specs()
    actions = spec["main"]["options"]["celery_action"]["choices"]
    assert set(spec) - {"main"} == set(actions)
    shared = {k: v for k, v in spec["main"]["options"].items() if k != "celery_action"}
    for action in actions:
        assert (ROLE / "tasks" / f"{action}.yml").is_file(), action
        assert spec[action]["options"] == shared, f"{action}: options differ from main's (celery_action aside)"


def test_the_playbook_checks_celery_action_against_the_entry_points_then_runs_it():
    check, run = playbook_tasks()
    assert check["vars"]["__celery_entry_points"] == specs()["main"]["options"]["celery_action"]["choices"]
    assert "celery_action" in check["ansible.builtin.assert"]["fail_msg"]
    include = run["ansible.builtin.include_role"]
    assert include == {"name": "opsbook.webstack.celery", "tasks_from": "{{ celery_action | default('report') }}"}


def test_every_entry_point_checks_the_role_input_first():
    for action in set(specs()) - {"main"}:
        first = yaml.safe_load((ROLE / "tasks" / f"{action}.yml").read_text(encoding="utf-8"))[0]
        assert first.get("ansible.builtin.import_tasks") == "input.yml", action
