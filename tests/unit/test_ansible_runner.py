"""The playbooks run under ansible-runner as CI and AWX run them: no ansible.cfg, exit codes
and status artifacts that mean something."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(sys.executable).parent / "ansible-runner"


def run_validate(private_dir: Path, inventory: Path) -> tuple[int, Path]:
    (private_dir / "project").symlink_to(ROOT / "playbooks")
    (private_dir / "inventory").symlink_to(inventory)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    result = subprocess.run(
        [RUNNER, "run", private_dir, "-p", "validate.yml", "--ident", "t1"],
        cwd=private_dir,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return result.returncode, private_dir / "artifacts" / "t1"


def test_validate_succeeds_under_ansible_runner(tmp_path):
    rc, artifacts = run_validate(tmp_path, ROOT / "inventories" / "lab")
    assert rc == 0
    assert (artifacts / "status").read_text() == "successful"
    assert (artifacts / "rc").read_text() == "0"


def test_a_bad_inventory_fails_under_ansible_runner(tmp_path):
    inventory = tmp_path / "inv"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text("all:\n  children:\n    app:\n      hosts:\n        app1:\n")
    (inventory / "group_vars").symlink_to(ROOT / "inventories" / "lab" / "group_vars")
    private = tmp_path / "pd"
    private.mkdir()
    rc, artifacts = run_validate(private, inventory)
    assert rc != 0
    assert (artifacts / "status").read_text() == "failed"
    events = [json.loads(p.read_text()) for p in sorted((artifacts / "job_events").glob("*.json"))]
    failures = [e for e in events if e.get("event") == "runner_on_failed"]
    assert failures, "no failed task event recorded"
    message = failures[0]["event_data"]["res"]["msg"]
    assert "missing required group(s)" in message and "db" in message


ENTRY_PLAYBOOKS = sorted(
    p.name for p in (ROOT / "playbooks").glob("*.yml") if p.name not in {"validate.yml", "site.yml"}
)


@pytest.mark.parametrize("playbook", ENTRY_PLAYBOOKS)
def test_every_playbook_starts_with_validation(playbook):
    text = (ROOT / "playbooks" / playbook).read_text()
    first_play = text.split("\n- ", 1)[0] + "\n- " + text.split("\n- ", 1)[1].split("\n- ", 1)[0]
    assert "import_playbook: validate.yml" in first_play, f"{playbook} does not validate first"
