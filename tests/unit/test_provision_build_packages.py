"""Issue 25 items 2 and 4: app_build_packages and app_python, through real ansible-playbook runs
on localhost of the provision role's build_packages_check.yml and build_packages.yml (with its
defaults and vars). Malformed input is refused naming it; a Python the distribution does not
ship is refused naming the ones it has (asked of this machine's apt, as provision asks each
host); a good list is what apt installs (check mode, so this machine is not changed: the apt
module reports the packages it would install)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "provision"
BIN = Path(sys.executable).parent

PLAYBOOK = """
- name: The provision role's build packages on localhost
  hosts: all
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Check
      ansible.builtin.include_role:
        name: {role}
        tasks_from: build_packages_check
    - name: Install
      ansible.builtin.include_role:
        name: {role}
        tasks_from: build_packages
      when: install | default(false)
"""


def run(tmp_path: Path, *args: str, **variables: object) -> subprocess.CompletedProcess:
    inventory = {
        "all": {
            "hosts": {"h": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
            "vars": {
                "opsbook_group_app": "all",
                "opsbook_group_worker": "all",
                "opsbook_group_scheduler": "all",
                **variables,
            },
        }
    }
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(role=ROLE))
    return subprocess.run(
        [BIN / "ansible-playbook", "-i", tmp_path / "hosts.json", tmp_path / "play.yml", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_NOCOLOR": "1"},
    )


def test_malformed_build_packages_and_python_are_refused_naming_them(tmp_path):
    out = run(tmp_path, app_build_packages=["libpq-dev", "libjpeg-dev; rm -rf /", "Gettext"], app_python="3.12.1")
    assert out.returncode != 0
    assert "app_build_packages must be a list of Debian package names" in out.stdout
    assert 'not package names: \\"libjpeg-dev; rm -rf /\\", \\"Gettext\\")' in out.stdout
    assert "got '3.12.1'" in out.stdout
    text = run(tmp_path, app_build_packages="libpq-dev")
    assert text.returncode != 0
    assert "app_build_packages must be a list of Debian package names such as libpq-dev (got libpq-dev)" in text.stdout


def apt_pythons() -> list[str]:
    out = subprocess.run(["apt-cache", "pkgnames", "python3."], capture_output=True, text=True, check=True)
    return sorted(n[len("python") :] for n in out.stdout.split() if re.fullmatch(r"python3\.[0-9]+", n))


@pytest.mark.skipif(not Path("/usr/bin/apt-cache").exists(), reason="provision runs on Debian hosts")
def test_a_python_the_distribution_does_not_ship_is_refused_naming_the_ones_it_has(tmp_path):
    have = apt_pythons()
    assert have, "apt-get update first: this machine's package lists are empty"
    out = run(tmp_path, "--check", install=True, app_build_packages=[], app_python="3.99")
    assert out.returncode != 0
    assert "app_python is 3.99, but Debian" in out.stdout
    assert f"has no python3.99 package (it has: {', '.join(have)})" in out.stdout


@pytest.mark.skipif(not Path("/usr/bin/apt-cache").exists(), reason="provision runs on Debian hosts")
def test_good_input_is_what_apt_installs_in_check_mode(tmp_path):
    have = apt_pythons()
    # hello: a small package no machine here has, so apt has something to install.
    packages = ["libpq-dev", "gettext", "hello"]
    out = run(tmp_path, "--check", "-v", install=True, app_build_packages=packages, app_python=have[0])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PROVISION | Install the app's build packages and Python] ***" in out.stdout
    section = out.stdout.split("Install the app's build packages and Python", 1)[1].split("PLAY RECAP")[0]
    assert section.splitlines()[1].startswith("changed: [h]"), section
    for package in (*packages, f"python{have[0]}", f"python{have[0]}-venv"):
        installed = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package], capture_output=True, text=True
        )
        if installed.stdout.startswith("ii"):
            continue
        assert package in section, f"{package} is not installed here, yet apt would not install it:\n{section}"
    assert "failed=0" in out.stdout
