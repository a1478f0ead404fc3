"""The configuration files backup.yml saves on each host by group (roles/backup/vars/main.yml
`__backup_config_paths`), rendered by ansible-playbook on this machine: the broker host saves
/etc/redis, and /etc/rabbitmq too when the app's broker is RabbitMQ (issue 25: a restore of a
broker host must bring back its vhosts' configuration, not only Redis's)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SHOW = "PATHS={{ __backup_config_paths | to_json }}"


def config_paths(tmp_path: Path, host: str, broker: dict, group_variables: bool = True) -> list[str]:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    groups = {
        "app": ["app1"],
        "worker": ["app1"],
        "scheduler": ["app1"],
        "db": ["db1"],
        "broker": ["mq1"],
        "lb": ["lb1"],
    }
    children = {g: {"hosts": {h: local for h in hosts}} for g, hosts in groups.items()}
    inventory = {
        "all": {"vars": {"app_name": "shop", "app_root": "/srv/shop", "app_workers": []}, "children": children}
    }
    if broker:
        inventory["all"]["vars"]["app_broker"] = broker
    for name in groups if group_variables else ():
        inventory["all"]["vars"][f"opsbook_group_{name}"] = name
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    play = [
        {
            "name": "Render",
            "hosts": host,
            "gather_facts": False,
            "vars_files": [str(ROOT / "roles" / "backup" / "defaults" / "main.yml"),
                           str(ROOT / "roles" / "backup" / "vars" / "main.yml")],
            "tasks": [{"name": "Show", "ansible.builtin.debug": {"msg": SHOW}}],
        }
    ]  # fmt: skip
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
    }
    env.pop("ANSIBLE_CONFIG", None)
    result = subprocess.run(
        [Path(sys.executable).parent / "ansible-playbook", "-i", tmp_path / "hosts.yml", tmp_path / "play.yml"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    found = re.search(r'"msg": "PATHS=(.*)"\n', result.stdout)
    assert result.returncode == 0 and found, result.stdout[-4000:]
    return json.loads(found[1].encode().decode("unicode_escape"))


@pytest.mark.parametrize(
    ("broker", "expected"),
    [
        ({}, ["/etc/redis"]),
        ({"kind": "redis", "host": "mq1"}, ["/etc/redis"]),
        (
            {"kind": "rabbitmq", "host": "mq1", "user": "shop", "password": "p", "vhost": "shop"},
            ["/etc/redis", "/etc/rabbitmq"],
        ),
    ],
    ids=["default", "redis", "rabbitmq"],
)
def test_the_broker_host_saves_its_brokers_configuration(tmp_path: Path, broker: dict, expected: list[str]) -> None:
    assert config_paths(tmp_path, "mq1", broker) == expected


def test_rabbitmq_configuration_is_saved_only_on_the_broker_host(tmp_path: Path) -> None:
    rabbit = {"kind": "rabbitmq", "host": "mq1", "user": "shop", "password": "p", "vhost": "shop"}
    db = config_paths(tmp_path, "db1", rabbit)
    assert db == ["/etc/postgresql"], db
    app = config_paths(tmp_path, "app1", rabbit)
    assert "/etc/rabbitmq" not in app and "/srv/shop/shared/config" in app, app


def test_an_inventory_without_opsbook_group_variables_reads_the_default_group_names(tmp_path: Path) -> None:
    """opsbook_group_* are needed only to rename a group (docs/inventory.md): the example inventories
    set none, and every role reads each with its default name (an unset one was an undefined-variable error)."""
    assert config_paths(tmp_path, "mq1", {}, group_variables=False) == ["/etc/redis"]
