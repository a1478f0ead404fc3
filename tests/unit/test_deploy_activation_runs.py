"""roles/deploy/vars/main.yml's __deploy_activate_runs: activate.yml's deploy_activate runs,
split exactly where a user hook sits between two steps. Evaluated by ansible-playbook on
localhost from the role's own vars file, for every combination of hooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

CASES = [
    ({}, True, [["switch", "restart", "health"]]),
    ({"before_switch": "x.yml", "after_health": "x.yml"}, True, [["switch", "restart", "health"]]),
    ({"after_switch": "x.yml"}, True, [["switch"], ["restart", "health"]]),
    ({"before_restart": "x.yml"}, True, [["switch"], ["restart", "health"]]),
    ({"after_restart": "x.yml"}, True, [["switch", "restart"], ["health"]]),
    ({"before_health": "x.yml"}, True, [["switch", "restart"], ["health"]]),
    ({"after_switch": "x.yml", "before_health": "x.yml"}, True, [["switch"], ["restart"], ["health"]]),
    # rollback and recovery run no hooks: never split
    ({"after_switch": "x.yml", "after_restart": "x.yml"}, False, [["switch", "restart", "health"]]),
]

PLAYBOOK = """\
- name: Evaluate the activation runs
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Load the deploy role's vars
      ansible.builtin.include_vars: {vars}
    - name: Write the runs
      ansible.builtin.copy:
        content: "{{{{ __deploy_activate_runs | to_json }}}}"
        dest: {out}
        mode: "0644"
      vars:
        deploy_hooks: {hooks}
        deploy_activate_hooks: {use_hooks}
"""


def runs(tmp_path: Path, hooks: dict, use_hooks: bool) -> list[list[str]]:
    playbook = tmp_path / "runs.yml"
    vars_file = ROOT / "roles" / "deploy" / "vars" / "main.yml"
    out_file = tmp_path / "runs.json"
    playbook.write_text(
        PLAYBOOK.format(vars=vars_file, hooks=json.dumps(hooks), use_hooks=str(use_hooks).lower(), out=out_file)
    )
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "false"}
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
    out = subprocess.run(
        [str(BIN / "ansible-playbook"), str(playbook)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out_file.read_text())


def test_activation_splits_only_where_a_hook_sits_between_two_steps(tmp_path):
    seen = [runs(tmp_path, hooks, use_hooks) for hooks, use_hooks, _ in CASES]
    assert seen == [expected for _, _, expected in CASES]
