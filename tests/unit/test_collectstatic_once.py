"""Where collectstatic runs (issue 24 item 2): roles/deploy/vars/main.yml's __deploy_collectstatic_in_build,
rendered by ansible-playbook itself on local hosts. True: once, on the build host of the host's build group,
into the release (build.yml); false: on each host after the migrations (migrate.yml)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_deploy_build_once import debug_messages

PLAYBOOK = """
- name: Where the deploy role collects static files
  hosts: all
  gather_facts: false
  tasks:
    - name: Load the deploy role's variables
      ansible.builtin.include_vars: {vars}
    - name: What install.yml lists
      ansible.builtin.set_fact:
        __deploy_needed_hosts: "{{{{ ansible_play_hosts }}}}"
      run_once: true
    - name: Show the decision
      ansible.builtin.debug:
        msg: "IN_BUILD {{{{ inventory_hostname }}}} {{{{ __deploy_collectstatic_in_build | bool }}}}"
"""

# Each letter is a platform of its own, so a build group (deploy_build once).
HOSTS = {
    "a1": {"app_env": {"DJANGO_ALLOWED_HOSTS": "*"}},
    "a2": {"app_env": {"DJANGO_ALLOWED_HOSTS": "*"}},
    "b1": {"app_env": {"DJANGO_ALLOWED_HOSTS": "b1.example.org"}},  # settings that differ per host
    "b2": {"app_env": {"DJANGO_ALLOWED_HOSTS": "b2.example.org"}},
    "c1": {"app_env": {"STATIC_ROOT": "/srv/static"}},  # outside the release
    "c2": {"app_env": {"STATIC_ROOT": "/srv/static"}},
    "d1": {"app_env": {}, "deploy_collectstatic_per_host": True},
    "d2": {"app_env": {}, "deploy_collectstatic_per_host": True},
    "e1": {"app_env": {}, "deploy_collectstatic": False},
    "e2": {"app_env": {}, "deploy_collectstatic": False},
    "f1": {},  # no app_env at all
    "f2": {},
}


def in_build(tmp_path: Path, build: str) -> dict[str, bool]:
    hosts = {
        name: {
            "ansible_connection": "local",
            "__deploy_platform": f"platform-{name[0]}",
            "app_root": "/srv/journal",
            **v,
        }
        for name, v in HOSTS.items()
    }
    inventory = {
        "all": {
            "hosts": hosts,
            "vars": {
                "deploy_build": build,
                "deploy_collectstatic": True,
                "deploy_collectstatic_per_host": False,
                "ansible_python_interpreter": sys.executable,
            },
        }
    }
    seen = {}
    for msg in debug_messages(tmp_path, inventory, PLAYBOOK):
        _, host, value = msg.split()
        seen[host] = value == "True"
    return seen


@pytest.mark.parametrize("build", ["once", "per_host"])
def test_collected_once_in_the_build_unless_the_files_cannot_ship_with_the_release(tmp_path, build):
    seen = in_build(tmp_path, build)
    expected = {
        "a": True,  # same env in the group: once, shipped with the release
        # app_env differs within the group: per host after the migrations; with per_host every
        # host is a group of its own and collects into its own build.
        "b": build == "per_host",
        "c": False,  # STATIC_ROOT in app_env: outside the release, per host
        "d": False,  # deploy_collectstatic_per_host
        "e": False,  # deploy_collectstatic false: migrate.yml's own condition skips it too
        "f": True,
    }
    assert seen == {host: expected[host[0]] for host in HOSTS}, seen
