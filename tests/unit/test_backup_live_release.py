"""backup:live_release, the release a backup's manifest names (issue 25: it said "unknown" with slots).

The entry point runs through ansible-playbook on this machine: the app root with its pointers,
the switch's state file and the nginx upstream are files in a temporary directory (their paths
given with -e as opsbook_lb_slot_file and opsbook_lb_nginx_upstream), every host local.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.opsbook.webstack.plugins.filter.app_backends import app_backends
from ansible_collections.opsbook.webstack.plugins.filter.nginx_upstream import nginx_upstream

import helpers

SLOTS = {"blue": {"group": "app", "port": 8001}, "green": {"group": "app", "port": 8002}}
GROUPS = {"lb": ["lb1"], "app": ["app1"]}

PLAYBOOK = """
- name: The release for the manifest
  hosts: db
  gather_facts: false
  tasks:
    - name: Read it as backup.yml does
      ansible.builtin.include_role:
        name: opsbook.webstack.backup
        tasks_from: live_release

    - name: Show it
      ansible.builtin.debug:
        msg: "RELEASE={{ backup_release }}"
"""


def release_dir(root: Path, pointer: str, release: str) -> None:
    (root / "releases" / release).mkdir(parents=True, exist_ok=True)
    (root / "releases" / release / "RELEASE").write_text(release + "\n")
    (root / pointer).symlink_to(f"releases/{release}")


def run(tmp_path: Path, slots: dict, *, served: str | None = None, state: str | None = None, check=False) -> str:
    app_root = tmp_path / "srv"
    app_root.mkdir(exist_ok=True)
    if state is not None:
        (tmp_path / "active-slot").write_text(state + "\n")
    if served is not None:
        (tmp_path / "upstream.conf").write_text(
            nginx_upstream(app_backends(SLOTS, GROUPS, "app", 8000, served), "journal")
        )
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {
        "all": {
            "vars": {"app_name": "journal", "app_root": str(app_root), "app_slots": slots, "app_http_port": 8000},
            "children": {
                "lb": {"hosts": {"lb1": local}},
                "app": {"hosts": {"app1": local}},
                "db": {"hosts": {"db1": local}},
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts))
    extra = {
        "opsbook_lb_slot_file": str(tmp_path / "active-slot"),
        "opsbook_lb_nginx_upstream": str(tmp_path / "upstream.conf"),
    }
    options = ["--check"] if check else []
    result = helpers.playbook_on_localhost(tmp_path, PLAYBOOK, extra, inventory=tmp_path / "hosts.yml", options=options)
    found = re.search(r"RELEASE=(\S*)", result.stdout)
    assert result.returncode == 0 and found, result.stdout[-4000:] + result.stderr[-2000:]
    return found[1].rstrip('"')


def test_in_place_the_current_release(tmp_path):
    release_dir(tmp_path / "srv", "current", "20261207T0700Z-v2")
    assert run(tmp_path, {}) == "20261207T0700Z-v2"


def test_nothing_deployed_records_unknown(tmp_path):
    assert run(tmp_path, {}) == "unknown"


@pytest.mark.parametrize(
    ("served", "state", "expected"),
    [
        ("green", "green", "R-green"),
        ("blue", "blue", "R-blue"),
        ("green", None, "R-green"),  # the state file lost: the configuration decides
        (None, "green", "R-green"),  # the configuration names no single slot: the state file
    ],
    ids=["green", "blue", "state-lost", "config-lost"],
)
def test_with_slots_the_live_slots_release(tmp_path, served, state, expected):
    release_dir(tmp_path / "srv", "blue", "R-blue")
    release_dir(tmp_path / "srv", "green", "R-green")
    assert run(tmp_path, SLOTS, served=served, state=state) == expected


def test_with_slots_in_check_mode_too(tmp_path):
    release_dir(tmp_path / "srv", "blue", "R-blue")
    release_dir(tmp_path / "srv", "green", "R-green")
    assert run(tmp_path, SLOTS, served="green", state="green", check=True) == "R-green"


def test_with_slots_and_no_slot_decided_records_unknown(tmp_path):
    release_dir(tmp_path / "srv", "blue", "R-blue")
    assert run(tmp_path, SLOTS) == "unknown"
