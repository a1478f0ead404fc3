"""Issue 25 item 1: app_config_files, through real ansible-playbook runs on localhost of the
deploy role's config_files_check.yml and config_files.yml (with its defaults and vars): the
files rendered into <app_root>/shared/config with their modes, check mode reporting by name
what a real run would change and changing nothing, a second run changing nothing, the secret
never printed (not even with --diff -v), malformed items refused naming each problem."""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "deploy"
BIN = Path(sys.executable).parent
SECRET = "s3cr3t-Config-Value-92731"

PLAYBOOK = """
- name: The deploy role's configuration files on localhost
  hosts: all
  gather_facts: false
  tasks:
    - name: Check
      ansible.builtin.include_role:
        name: {role}
        tasks_from: config_files_check
    - name: Render
      ansible.builtin.include_role:
        name: {role}
        tasks_from: config_files
"""


def run(tmp_path: Path, files: list, *args: str) -> subprocess.CompletedProcess:
    me = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    inventory = {
        "all": {
            "hosts": {"h": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
            "vars": {
                "app_root": str(tmp_path / "app"),
                "app_user": me,
                "app_group": group,
                "app_config_files": files,
                "vault_secret": SECRET,
            },
        }
    }
    inv_dir = tmp_path / "inventory"
    (inv_dir / "templates").mkdir(parents=True, exist_ok=True)
    (inv_dir / "hosts.json").write_text(json.dumps(inventory))
    (inv_dir / "templates" / "local_settings.py.j2").write_text("SECRET_KEY = '{{ vault_secret }}'\n")
    (inv_dir / "templates" / "app.ini.j2").write_text("[app]\nroot = {{ app_root }}\n")
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(role=ROLE))
    (tmp_path / "app" / "shared").mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [BIN / "ansible-playbook", "-i", inv_dir / "hosts.json", tmp_path / "play.yml", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_NOCOLOR": "1"},
    )


def recap(out: subprocess.CompletedProcess) -> str:
    return out.stdout[out.stdout.index("PLAY RECAP") :]


GOOD = [
    {"src": "templates/local_settings.py.j2", "dest": "journal/local_settings.py", "mode": 0o600},
    {"src": "templates/app.ini.j2", "dest": "app.ini", "mode": "0640"},
]


def test_check_mode_names_the_files_then_a_real_run_renders_them_once_never_printing_them(tmp_path):
    config = tmp_path / "app" / "shared" / "config"
    check = run(tmp_path, GOOD, "--check", "--diff", "-v")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Would change under " + str(config) + ": journal/local_settings.py, app.ini" in check.stdout
    assert not (config / "journal" / "local_settings.py").exists()

    first = run(tmp_path, GOOD, "--diff", "-v")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Changed under " + str(config) + ": journal/local_settings.py, app.ini" in first.stdout
    settings = config / "journal" / "local_settings.py"
    assert settings.read_text() == f"SECRET_KEY = '{SECRET}'\n"
    assert settings.stat().st_mode & 0o777 == 0o600
    assert (config / "app.ini").stat().st_mode & 0o777 == 0o640
    assert (config / "app.ini").read_text() == f"[app]\nroot = {tmp_path / 'app'}\n"
    assert config.stat().st_mode & 0o777 == 0o750

    again = run(tmp_path, GOOD, "--check", "--diff")
    assert again.returncode == 0, again.stdout + again.stderr
    assert ": nothing" in again.stdout
    second = run(tmp_path, GOOD)
    assert "changed=0" in recap(second), second.stdout

    (config / "app.ini").chmod(0o644)  # drifted: put back
    third = run(tmp_path, GOOD)
    assert "Changed under " + str(config) + ": app.ini" in third.stdout
    assert (config / "app.ini").stat().st_mode & 0o777 == 0o640
    for out in (check, first, again, second, third):
        assert SECRET not in out.stdout + out.stderr


def test_malformed_items_are_refused_naming_each_problem_before_anything_is_written(tmp_path):
    bad = [
        {"src": "templates/missing.j2", "dest": "a.py"},
        {"src": "templates/app.ini.j2", "dest": "../etc/passwd"},
        {"src": "templates/app.ini.j2", "dest": "b.ini", "mode": "0644"},
        {"dest": "c.ini"},
        "d.ini",
    ]
    out = run(tmp_path, bad)
    assert out.returncode != 0
    text = out.stdout
    assert "app_config_files must be a list of items with src" in text
    assert "item 1 src templates/missing.j2 is not a file on the controller" in text
    assert "item 2 dest (../etc/passwd) must be a file path relative to the release" in text
    assert 'item 3 (b.ini) mode 0644 must be "0600" or "0640"' in text
    assert "item 4 has no src." in text
    assert "item 5 is not a mapping." in text
    assert not (tmp_path / "app" / "shared" / "config").exists()
