"""provision's load balancer step keeps the slot that serves (issue 19 item 11, the provision side).

With blue-green slots, provision renders the load balancer's servers with one slot active. It
used to read only the state file the switch writes, and took blue when that file was missing:
re-provisioning a load balancer that had lost the file after a switch to green moved traffic to
the idle slot. Here lb_slot.yml runs through ansible-playbook on this machine, the state file and
the nginx upstream being files in a temporary directory (their paths given with -e as
opsbook_lb_slot_file and opsbook_lb_nginx_upstream), and the
test reads which slot the rendered servers would send traffic to.
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
from ansible_collections.opsbook.webstack.plugins.filter.nginx_upstream import nginx_upstream

ROOT = Path(__file__).resolve().parents[2]
SLOTS = {"blue": {"group": "app", "port": 8001}, "green": {"group": "app", "port": 8002}}
GROUPS = {"lb": ["lb1"], "app": ["app1"]}

PLAYBOOK = """
- name: The load balancer's servers
  hosts: lb
  gather_facts: false
  tasks:
    - name: Read the live slot as provision does
      ansible.builtin.include_role:
        name: opsbook.webstack.provision
        tasks_from: lb_slot

    - name: Show the active servers
      ansible.builtin.debug:
        msg: "ACTIVE={{ provision_lb_backends | selectattr('active') | map(attribute='slot') | unique | join(',') }}"
"""


def run(tmp_path: Path, state: bytes | None, served: str | None, **more) -> subprocess.CompletedProcess:
    if state is not None:
        (tmp_path / "active-slot").write_bytes(state)
    if served is not None:
        (tmp_path / "upstream.conf").write_text(
            nginx_upstream(app_backends(SLOTS, GROUPS, "app", 8000, served), "journal")
        )
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {
        "all": {
            "vars": {"app_name": "journal", "app_slots": SLOTS, "app_http_port": 8000, "opsbook_group_app": "app"},
            "children": {"lb": {"hosts": {"lb1": local}}, "app": {"hosts": {"app1": local}}},
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    extra = {
        "opsbook_lb_slot_file": str(tmp_path / "active-slot"),
        "opsbook_lb_nginx_upstream": str(tmp_path / "upstream.conf"),
        **more,
    }
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
    }
    env.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(
        [Path(sys.executable).parent / "ansible-playbook", "-i", tmp_path / "hosts.yml", tmp_path / "play.yml",
         "-e", json.dumps(extra)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip


def active(result: subprocess.CompletedProcess) -> str:
    found = re.search(r"ACTIVE=(\w*)", result.stdout)
    assert result.returncode == 0 and found, result.stdout[-4000:]
    return found[1]


@pytest.mark.parametrize(
    ("state", "served", "expected"),
    [
        (None, "green", "green"),  # the state file lost after a switch: the configuration says green
        (b"\x00\xffgre", "green", "green"),  # a damaged state file: the same
        (b"green\n", None, "green"),  # the configuration lost: the state file rebuilds it
        (b"green\n", "green", "green"),
        (None, None, "blue"),  # a new load balancer: nothing says anything yet
    ],
    ids=["state-lost", "state-damaged", "config-lost", "agree", "new"],
)
def test_provision_keeps_the_slot_that_serves(tmp_path, state, served, expected):
    assert active(run(tmp_path, state, served)) == expected


def test_a_state_file_contradicting_the_configuration_is_refused(tmp_path):
    result = run(tmp_path, b"blue\n", "green")
    assert result.returncode == 2, result.stdout[-4000:]
    assert "ACTIVE=" not in result.stdout
    message = " ".join(result.stdout.split())
    assert "The live slot is unclear, so nothing was changed" in message, message[-3000:]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["opsbook_lb_nginx_upstream"], "blue"),
        (["opsbook_lb_nginx_upstream", "deploy_lb_nginx_upstream"], "green"),  # the older name wins
        (["opsbook_lb_nginx_upstream", "blue_green_nginx_upstream"], "green"),
    ],
    ids=["new-name", "deploy-name-wins", "blue-green-name-wins"],
)
def test_provision_reads_the_upstream_file_the_settings_name(tmp_path, names, expected):
    """Issue 22 item 4: the file is opsbook_lb_nginx_upstream's, or an older name's when that is set too
    (opsbook.webstack.lb_settings). Each file sends traffic to another slot; no state file: the file decides."""
    paths = {}
    for name, slot in zip(names, ["blue", "green"], strict=False):
        paths[name] = str(tmp_path / f"{slot}.conf")
        Path(paths[name]).write_text(nginx_upstream(app_backends(SLOTS, GROUPS, "app", 8000, slot), "journal"))
    assert active(run(tmp_path, None, None, **paths)) == expected
