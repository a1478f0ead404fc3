"""Where maintenance.yml and health.yml put their reports by default (roles/maintenance/defaults).

$OPSBOOK_REPORT_DIR, else $XDG_STATE_HOME/opsbook/reports (an absolute one), else
~/.local/state/opsbook/reports: rendered by Ansible from the role's own defaults file, on the
controller, from a directory with no ansible.cfg. tests/lab/test_installed_collection.py
shows it from the installed collection against the lab.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFAULTS = ROOT / "roles" / "maintenance" / "defaults" / "main.yml"


def report_dir(tmp_path: Path, **env: str) -> str:
    """maintenance_report_dir as Ansible renders it with `env`; HOME is tmp_path/home (Ansible writes there)."""
    base = {k: v for k, v in os.environ.items() if k not in ("OPSBOOK_REPORT_DIR", "XDG_STATE_HOME", "ANSIBLE_CONFIG")}
    env = {"HOME": str(tmp_path / "home"), **env}
    result = subprocess.run(
        [BIN / "ansible", "localhost", "-m", "ansible.builtin.debug", "-a", "var=maintenance_report_dir",
         "-e", f"@{DEFAULTS}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**base, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "false", **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.split("=>", 1)[1])["maintenance_report_dir"].replace(env["HOME"], "~")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "~/.local/state/opsbook/reports"),
        ({"XDG_STATE_HOME": "/var/lib/ops/state"}, "/var/lib/ops/state/opsbook/reports"),
        ({"XDG_STATE_HOME": "state"}, "~/.local/state/opsbook/reports"),
        ({"XDG_STATE_HOME": ""}, "~/.local/state/opsbook/reports"),
        ({"XDG_STATE_HOME": "/x", "OPSBOOK_REPORT_DIR": "/srv/reports"}, "/srv/reports"),
        ({"OPSBOOK_REPORT_DIR": ""}, "~/.local/state/opsbook/reports"),
    ],
    ids=["home", "xdg", "relative-xdg-ignored", "empty-xdg", "opsbook-report-dir-wins", "empty-override"],
)
def test_default_report_dir(tmp_path, env, expected):
    assert report_dir(tmp_path, **env) == expected


def test_default_is_never_beside_the_playbooks():
    text = DEFAULTS.read_text()
    assert "playbook_dir" not in text.split("maintenance_report_dir:", 1)[1].split("\n#", 1)[0]
