"""deploy's input check under app_runtime compose: a compose file template that is not on the controller is
refused naming app_compose_file, before anything changes; an absolute one and one next to the inventory pass."""

from __future__ import annotations

from pathlib import Path

from helpers import playbook_on_localhost

PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: opsbook.webstack.deploy
        tasks_from: input
"""


def run(tmp_path: Path, compose_file: str, inventory: Path | None = None):
    extra = {
        "app_name": "journal", "app_runtime": "compose", "app_compose_file": compose_file,
        "deploy_ref": "v1", "deploy_source_repo": "/srv/repo.git",
    }  # fmt: skip
    return playbook_on_localhost(tmp_path, PLAY, extra, inventory=inventory)


def test_a_missing_compose_file_is_refused_naming_the_variable(tmp_path):
    result = run(tmp_path, "no-such-compose.yml.j2")
    assert result.returncode != 0
    assert "app_compose_file 'no-such-compose.yml.j2' is not a file on the controller" in result.stdout
    assert "Nothing was changed." in result.stdout


def test_an_absolute_template_and_one_next_to_the_inventory_pass(tmp_path):
    template = tmp_path / "compose.yml.j2"
    template.write_text("services: {}\n")
    result = run(tmp_path, str(template))
    assert result.returncode == 0, result.stdout[-3000:]
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
    )
    (inventory / "compose.yml.j2").write_text("services: {}\n")
    result = run(tmp_path, "compose.yml.j2", inventory=inventory / "hosts.yml")
    assert result.returncode == 0, result.stdout[-3000:]
