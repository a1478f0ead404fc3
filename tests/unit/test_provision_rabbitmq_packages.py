"""provision's common.yml asks dpkg whether every package the host's groups need is installed and
refreshes the package lists only when one is missing. rabbitmq-server must be among them on a broker
host whose app_broker is RabbitMQ: the lab's db1 (every other package in its image, no lists) failed
with "No package matching 'rabbitmq-server' is available" (django-ca, issue 25). The list is rendered
here from the task itself with the role's defaults and vars, by ansible-playbook."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

import helpers

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "provision"


def packages(tmp_path: Path, host: str, **host_vars) -> list[str]:
    (task,) = [
        t for t in yaml.safe_load((ROLE / "tasks" / "common.yml").read_text()) if "__packages" in t.get("vars", {})
    ]
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    groups = {
        "lb": ["lb1"],
        "app": ["app1"],
        "worker": ["app1"],
        "scheduler": ["app1"],
        "db": ["db1"],
        "broker": ["db1"],
    }
    inventory = {
        "all": {
            "vars": {
                **{f"opsbook_group_{g}": g for g in groups},
                "app_name": "ca", "app_workers": [], "app_redis_password": "x", "app_redis_host": "db1",
                "app_redis_port": 6379, "app_redis_db": 0,
                **host_vars,
            },
            "children": {g: {"hosts": {h: local for h in hosts}} for g, hosts in groups.items()},
        }
    }  # fmt: skip
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    play = [
        {
            "name": "Render the packages common.yml checks",
            "hosts": host,
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
            "vars": {"__packages": task["vars"]["__packages"]},
            "tasks": [{"name": "Show", "ansible.builtin.debug": {"msg": "PACKAGES={{ __packages | to_json }}"}}],
        }
    ]
    out = helpers.playbook_on_localhost(tmp_path, yaml.safe_dump(play), {}, inventory=tmp_path / "hosts.yml")
    found = re.search(r'"msg": "PACKAGES=(.*)"\n', out.stdout)
    assert out.returncode == 0 and found, out.stdout[-3000:] + out.stderr[-2000:]
    return json.loads(json.loads(f'"{found[1]}"'))


def test_a_rabbitmq_broker_host_needs_rabbitmq_server(tmp_path):
    broker = {"kind": "rabbitmq", "host": "db1", "vhost": "ca", "user": "ca", "password": "p"}
    assert {"redis-server", "rabbitmq-server"} <= set(packages(tmp_path, "db1", app_broker=broker))


def test_a_redis_broker_host_does_not(tmp_path):
    found = packages(tmp_path, "db1")
    assert "redis-server" in found and "rabbitmq-server" not in found
