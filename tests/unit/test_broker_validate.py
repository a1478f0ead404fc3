"""playbooks/validate.yml on the lab inventory with an app_broker (issue 25): an incomplete RabbitMQ
description is refused naming app_broker and the missing key, before any host is contacted, and
without printing its password; a complete one passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB = ROOT / "inventories" / "lab"
SECRET = "br0ker-S3cret/@:%"


def run_validate(tmp_path: Path, broker: dict) -> subprocess.CompletedProcess:
    inventory = tmp_path / "inventory"
    shutil.copytree(LAB, inventory)
    (inventory / "group_vars" / "all" / "zz-broker.yml").write_text(yaml.safe_dump({"app_broker": broker}))
    # Nothing listens on port 1: a task that connected would fail as unreachable.
    (inventory / "group_vars" / "all" / "zz-unreachable.yml").write_text(
        yaml.safe_dump({"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="1", NO_COLOR="1", PATH=f"{BIN}:{env.get('PATH', '')}")
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(ROOT / "playbooks" / "validate.yml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_incomplete_rabbitmq_description_is_refused_naming_it(tmp_path):
    result = run_validate(tmp_path, {"kind": "rabbitmq", "host": "broker1", "password": SECRET})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    expected = "kind is rabbitmq but all of the following are missing: user found in app_broker"
    assert expected in output, output[-3000:]
    assert "unreachable=1" not in output
    assert SECRET not in output


def test_unknown_broker_kind_is_refused(tmp_path):
    result = run_validate(tmp_path, {"kind": "sqs", "host": "q"})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "app_broker" in output and "kind" in output and "redis, rabbitmq" in output, output[-3000:]


def test_complete_rabbitmq_description_passes(tmp_path):
    result = run_validate(
        tmp_path, {"kind": "rabbitmq", "host": "broker1", "vhost": "journal", "user": "journal", "password": SECRET}
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert SECRET not in output
