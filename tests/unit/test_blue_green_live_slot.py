"""The blue_green role's `state` and `plan` steps, run by ansible-playbook on this machine.

Issue 19 item 11: with the state file on the first load balancer missing, the role assumed blue and
chose green, the slot that serves, for a deploy. Here the "load balancer" and the "app host" are
local hosts of a temporary inventory; the state file, the load balancer configuration and the slot
pointers are files in a temporary directory (their paths are opsbook_lb_slot_file and
opsbook_lb_nginx_upstream, given with -e).
Each run takes a few seconds; the decision itself is unit-tested in
tests/unit/plugins/filter/test_live_slot.py, and end to end in molecule/blue_green.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.opsbook.webstack.plugins.filter.app_backends import app_backends
from ansible_collections.opsbook.webstack.plugins.filter.caddy_upstream import caddy_upstream
from ansible_collections.opsbook.webstack.plugins.filter.nginx_upstream import nginx_upstream

ROOT = Path(__file__).resolve().parents[2]
PORTS = {"blue": {"group": "app", "port": 8001}, "green": {"group": "app", "port": 8002}}
GROUPS = {"lb": ["lb1"], "app": ["app1"], "worker": ["app1"], "scheduler": ["app1"]}

PLAYBOOK = """
- name: Plan a blue-green deploy
  hosts: lb:app
  gather_facts: false
  tasks:
    - name: Choose the slot
      ansible.builtin.include_role:
        name: opsbook.webstack.blue_green
        tasks_from: plan
      vars:
        blue_green_plan: deploy

    - name: Show the choice
      ansible.builtin.debug:
        msg: "CHOICE active={{ blue_green_active }} target={{ blue_green_target }}"
      run_once: true
"""


def inventory(tmp_path: Path) -> Path:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {
        "all": {
            "vars": {
                "app_name": "journal",
                "app_root": str(tmp_path / "srv"),
                "app_workers": [],
                "app_slots": PORTS,
                "app_http_port": 8000,
                "opsbook_group_lb": "lb",
                "opsbook_group_app": "app",
                "opsbook_group_worker": "worker",
                "opsbook_group_scheduler": "scheduler",
                # a revision neither slot serves: the deploy goes to the idle slot
                "deploy_revision": "c3" * 20,
            },
            "children": {
                "lb": {"hosts": {"lb1": dict(local)}},
                "app": {"hosts": {"app1": dict(local)}},
                "worker": {"hosts": {"app1": {}}},
                "scheduler": {"hosts": {"app1": {}}},
            },
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(hosts))
    return path


def slots_after_a_switch_to_green(tmp_path: Path) -> None:
    """v1 on blue, v2 on green, the load balancer sending to green (as blue_green.yml leaves it)."""
    srv = tmp_path / "srv"
    for release, revision in (("r1", "a1" * 20), ("r2", "b2" * 20)):
        (srv / "releases" / release).mkdir(parents=True)
        (srv / "releases" / release / "REVISION").write_text(revision + "\n")
    (srv / "blue").symlink_to("releases/r1")
    (srv / "green").symlink_to("releases/r2")
    upstream = nginx_upstream(app_backends(PORTS, GROUPS, "app", 8000, "green"), "journal")
    (tmp_path / "upstream.conf").write_text(upstream)


def plan(tmp_path: Path, **more) -> subprocess.CompletedProcess:
    (tmp_path / "plan.yml").write_text(PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
    }
    env.pop("ANSIBLE_CONFIG", None)  # run from tmp_path: the project's ansible.cfg is not read
    extra = {
        "opsbook_lb_slot_file": str(tmp_path / "active-slot"),
        "opsbook_lb_nginx_upstream": str(tmp_path / "upstream.conf"),
        "blue_green_fact_path": str(tmp_path / "opsbook_blue_green.fact"),
        **more,
    }
    return subprocess.run(
        [Path(sys.executable).parent / "ansible-playbook", "-i", inventory(tmp_path), tmp_path / "plan.yml",
         "-e", json.dumps(extra)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip


def choice(result: subprocess.CompletedProcess) -> tuple[str, str]:
    found = re.search(r"CHOICE active=(\w+) target=(\w+)", result.stdout)
    assert result.returncode == 0 and found, result.stdout[-4000:]
    return found[1], found[2]


@pytest.mark.parametrize("state", ["missing", "garbage"])
def test_a_deploy_after_a_switch_to_green_goes_to_blue_when_the_state_file_is_lost(tmp_path, state):
    slots_after_a_switch_to_green(tmp_path)
    if state == "garbage":
        (tmp_path / "active-slot").write_bytes(b"\x00\xffgre")
    result = plan(tmp_path)
    assert choice(result) == ("green", "blue")
    if state == "garbage":
        assert "the live slot green was read from" in result.stdout


def test_the_state_file_and_the_load_balancer_agreeing_decide(tmp_path):
    slots_after_a_switch_to_green(tmp_path)
    (tmp_path / "active-slot").write_text("green\n")
    assert choice(plan(tmp_path)) == ("green", "blue")


def test_the_state_file_saying_blue_while_the_load_balancer_serves_green_is_refused(tmp_path):
    slots_after_a_switch_to_green(tmp_path)
    (tmp_path / "active-slot").write_text("blue\n")
    result = plan(tmp_path)
    assert result.returncode == 2, result.stdout[-4000:]
    assert "CHOICE" not in result.stdout
    message = " ".join(result.stdout.split())
    assert "The live slot is unclear, so nothing was changed" in message, message[-3000:]
    assert f"{tmp_path / 'active-slot'} on lb1 says blue" in message
    assert f"{tmp_path / 'upstream.conf'} (nginx) on lb1 sends traffic to green" in message


def test_the_older_name_of_the_upstream_file_still_works_and_wins(tmp_path):
    """Issue 22 item 4: an inventory with blue_green_nginx_upstream (the older name) keeps working, and wins
    over opsbook_lb_nginx_upstream (here a file that does not exist, which alone would leave nothing to decide)."""
    slots_after_a_switch_to_green(tmp_path)
    (tmp_path / "upstream.conf").rename(tmp_path / "old-name.conf")
    result = plan(tmp_path, blue_green_nginx_upstream=str(tmp_path / "old-name.conf"))
    assert choice(result) == ("green", "blue")
    # the new name alone, naming the missing file: the slot cannot be read, and the message names that file
    result = plan(tmp_path)
    assert result.returncode == 2 and "CHOICE" not in result.stdout, result.stdout[-4000:]
    assert f"{tmp_path / 'upstream.conf'}" in " ".join(result.stdout.split())


def test_behind_caddy_the_upstream_file_tells_the_live_slot(tmp_path):
    """Issue 20 item 3: with opsbook_lb_software caddy the role reads Caddy's upstream file (a line
    commented out as a rolling restart leaves it, `# down: to ...`, takes no traffic): green serves, the
    deploy goes to blue; a state file saying blue is refused naming the Caddy file."""
    slots_after_a_switch_to_green(tmp_path)
    text = caddy_upstream(app_backends(PORTS, GROUPS, "app", 8000, "green"))
    (tmp_path / "journal-upstream.caddy").write_text(text + "# down: to app1:8001\n")
    caddy = {"opsbook_lb_software": "caddy", "opsbook_lb_caddy_upstream": str(tmp_path / "journal-upstream.caddy")}
    (tmp_path / "upstream.conf").unlink()  # nginx's file is not read behind Caddy
    assert choice(plan(tmp_path, **caddy)) == ("green", "blue")
    (tmp_path / "active-slot").write_text("blue\n")
    result = plan(tmp_path, **caddy)
    assert result.returncode == 2 and "CHOICE" not in result.stdout, result.stdout[-4000:]
    message = " ".join(result.stdout.split())
    assert f"{tmp_path / 'journal-upstream.caddy'} (caddy) on lb1 sends traffic to green" in message, message[-3000:]
