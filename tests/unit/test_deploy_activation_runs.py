"""roles/deploy/tasks/activate.yml, run for real by ansible-playbook on localhost with the role's
own vars file: the deploy_activate runs it makes and the hooks between them, for every
combination of hooks. Its neighbours are stand-ins in the same directory that record what they
were asked (activate_steps.yml the steps of one module run, hook.yml the hook); the progress
note is written and removed in tmp_path. Without a hook between two steps, one bundled run;
with one, a run per step and the hooks between them (issue 22 item 3: no Jinja split)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUNDLE = [["switch", "restart", "health"]]
ONE_BY_ONE = [["switch"], "after_switch", "before_restart", ["restart"], "after_restart", "before_health", ["health"]]


def expected_one_by_one(hooks: dict) -> list:
    return [step for step in ONE_BY_ONE if isinstance(step, list) or step in hooks]


CASES = [
    ({}, True, {}, BUNDLE),
    ({"before_switch": "x.yml", "after_health": "x.yml"}, True, {}, ["before_switch", *BUNDLE, "after_health"]),
    ({"after_switch": "x.yml"}, True, {}, expected_one_by_one({"after_switch"})),
    ({"before_restart": "x.yml"}, True, {}, expected_one_by_one({"before_restart"})),
    ({"after_restart": "x.yml"}, True, {}, expected_one_by_one({"after_restart"})),
    ({"before_health": "x.yml"}, True, {}, expected_one_by_one({"before_health"})),
    (
        {"before_switch": "x.yml", "after_switch": "x.yml", "before_health": "x.yml", "after_health": "x.yml"},
        True,
        {},
        ["before_switch", *expected_one_by_one({"after_switch", "before_health"}), "after_health"],
    ),
    # rollback and recovery run no hooks: always the bundle
    ({"after_switch": "x.yml", "after_restart": "x.yml"}, False, {}, BUNDLE),
    # restart.yml's rolling restart: its own bundle, no switch
    ({"after_switch": "x.yml"}, False, {"__deploy_activate_steps": ["restart", "health"]}, [["restart", "health"]]),
]

RECORD = """\
- name: Record {what}
  ansible.builtin.set_fact:
    seen: "{{{{ seen + [{value}] }}}}"
"""

PLAY = """\
- name: Run the deploy role's activate.yml with stand-ins around it, case {number}
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Start a new record (facts outlive their play)
      ansible.builtin.set_fact:
        seen: []
    - name: Load the deploy role's vars
      ansible.builtin.include_vars: {vars}
    - name: Activate
      ansible.builtin.include_tasks: {tasks}/activate.yml
      vars: {task_vars}
    - name: Write what ran
      ansible.builtin.copy:
        content: "{{{{ seen | to_json }}}}"
        dest: {out}
        mode: "0644"
"""


def test_activation_bundles_the_steps_unless_a_hook_sits_between_two(tmp_path):
    """One ansible-playbook run, a play per case."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    shutil.copy(ROOT / "roles" / "deploy" / "tasks" / "activate.yml", tasks / "activate.yml")
    (tasks / "activate_steps.yml").write_text("---\n" + RECORD.format(what="the steps", value="deploy_activate_steps"))
    (tasks / "hook.yml").write_text("---\n" + RECORD.format(what="the hook", value="deploy_hook"))
    (tasks / "lb.yml").write_text("---\n" + RECORD.format(what="the load balancer", value="'lb'"))
    plays = []
    for number, (hooks, use_hooks, extra, _expected) in enumerate(CASES):
        task_vars = {
            "deploy_hooks": hooks,
            "deploy_activate_hooks": use_hooks,
            "deploy_activate_release": "r2",
            "deploy_previous_release": "r1",
            "__deploy_progress_path": str(tmp_path / "progress" / str(number)),
            "__deploy_is_app": False,
            "deploy_lb_rotate": True,
            **extra,
        }
        plays.append(
            PLAY.format(
                number=number,
                vars=ROOT / "roles" / "deploy" / "vars" / "main.yml",
                tasks=tasks,
                task_vars=json.dumps(task_vars),
                out=tmp_path / f"seen-{number}.json",
            )
        )
    playbook = tmp_path / "activate.yml"
    playbook.write_text("".join(plays))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "false"}
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
    out = subprocess.run(
        [str(BIN / "ansible-playbook"), str(playbook)], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    seen = [json.loads((tmp_path / f"seen-{number}.json").read_text()) for number in range(len(CASES))]
    assert seen == [expected for *_, expected in CASES]
    # The progress note: written before the walk (its directory made), removed after it.
    assert (tmp_path / "progress").is_dir() and not list((tmp_path / "progress").iterdir())
