"""deploy_build once (issue 24 item 2): the build plan the role derives from the platform key each host
reports (roles/deploy/vars/main.yml's __deploy_build_group / __deploy_builder, rendered by
ansible-playbook itself on local hosts). The key itself: tests/unit/plugins/modules/test_deploy_host_state.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "roles" / "deploy" / "files"
BIN = Path(sys.executable).parent


PLAYBOOK = """
- name: The deploy role's build plan on hosts of two platforms and two app roots
  hosts: all
  gather_facts: false
  tasks:
    - name: Load the deploy role's variables
      ansible.builtin.include_vars: {vars}
    - name: What install.yml lists (d already serves the release)
      ansible.builtin.set_fact:
        __deploy_needed_hosts: [a, b, c, e, f, g]
      run_once: true
    - name: Show the plan
      ansible.builtin.debug:
        msg: >-
          PLAN {{{{ {{'host': inventory_hostname, 'builder': __deploy_builder,
                     'group': __deploy_build_group}} | to_json }}}}
      when: inventory_hostname in __deploy_needed_hosts
"""


def plan(tmp_path: Path, build: str) -> dict:
    hosts = {
        "a": ("debian-12 x86_64 glibc 2.36 /usr/bin/python3.11 3.11.2 cpython-311", "/srv/journal"),
        "b": ("debian-12 x86_64 glibc 2.36 /usr/bin/python3.11 3.11.2 cpython-311", "/srv/journal"),
        "c": ("debian-13 x86_64 glibc 2.41 /usr/bin/python3.13 3.13.5 cpython-313", "/srv/journal"),
        "d": ("debian-12 x86_64 glibc 2.36 /usr/bin/python3.11 3.11.2 cpython-311", "/srv/journal"),
        "e": ("debian-13 x86_64 glibc 2.41 /usr/bin/python3.13 3.13.5 cpython-313", "/srv/journal"),
        "f": ("debian-12 x86_64 glibc 2.36 /usr/bin/python3.11 3.11.2 cpython-311", "/opt/journal"),
        "g": ("debian-12 x86_64 glibc 2.36 /usr/bin/python3.11 3.11.2 cpython-311", "/srv/journal"),
    }
    inventory = {
        "all": {
            "hosts": {
                name: {"ansible_connection": "local", "__deploy_platform": key, "app_root": root}
                for name, (key, root) in hosts.items()
            },
            "vars": {"deploy_build": build, "ansible_python_interpreter": sys.executable},
        }
    }
    seen = {}
    for msg in debug_messages(tmp_path, inventory, PLAYBOOK):
        if msg.startswith("PLAN "):
            entry = json.loads(msg[len("PLAN ") :])
            seen[entry["host"]] = (entry["builder"], entry["group"])
    return seen


def debug_messages(tmp_path: Path, inventory: dict, playbook: str) -> list[str]:
    """The debug messages of playbook ({vars}: the deploy role's vars/main.yml) run on inventory."""
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(playbook.format(vars=ROOT / "roles" / "deploy" / "vars" / "main.yml"))
    out = subprocess.run(
        [BIN / "ansible-playbook", "-i", tmp_path / "inventory.json", tmp_path / "play.yml"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,  # its ansible.cfg finds the collection (vars/main.yml uses its filters)
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_NOCOLOR": "1"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return [json.loads("{" + line.strip() + "}")["msg"] for line in out.stdout.splitlines() if '"msg": ' in line]


def test_once_builds_on_the_first_needed_host_of_each_platform_and_app_root(tmp_path):
    assert plan(tmp_path, "once") == {
        "a": ("a", ["a", "b", "g"]),
        "b": ("a", ["a", "b", "g"]),
        "g": ("a", ["a", "b", "g"]),
        "c": ("c", ["c", "e"]),  # another OS and Python: its own build
        "e": ("c", ["c", "e"]),
        "f": ("f", ["f"]),  # same platform, another app_root: the virtualenv's path differs
    }


def test_per_host_builds_on_every_host(tmp_path):
    assert plan(tmp_path, "per_host") == {h: (h, [h]) for h in "abcefg"}


def release_sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """roles/deploy/files/release.sh as build.yml runs it: `/bin/sh -ec <text> release MODE ARGS...`."""
    out = subprocess.run(
        ["/bin/sh", "-ec", (FILES / "release.sh").read_text(), "release", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def built_release(root: Path) -> Path:
    """A finished release as `release.sh build` leaves it (code, REVISION, a virtualenv)."""
    rel = root / "releases" / "20261205T000000Z-v2"
    (rel / "venv" / "bin").mkdir(parents=True)
    (rel / "venv" / "bin" / "python").write_text("#!/bin/sh\n")
    (rel / "venv" / "bin" / "python").chmod(0o755)
    (rel / "manage.py").write_text("print('v2')\n")
    (rel / "REVISION").write_text("abc\n")
    return rel


def test_pack_then_unpack_ships_the_release_to_the_same_path_and_removes_half_made_ones(tmp_path):
    rel = built_release(tmp_path / "build")
    archive, digest = release_sh("pack", str(rel)).stdout.split()
    assert Path(archive).stat().st_mode & 0o777 == 0o600
    assert Path(archive).parent.stat().st_mode & 0o777 == 0o700
    target = tmp_path / "host" / "releases" / rel.name
    leftover = tmp_path / "host" / "releases" / "20261204T000000Z-v1"  # a killed run's unfinished release
    leftover.mkdir(parents=True)
    (leftover / ".installing").write_text("")
    shipped = tmp_path / "shipped.tar.gz"
    shipped.write_bytes(Path(archive).read_bytes())
    shutil.rmtree(Path(archive).parent)
    assert release_sh("unpack", str(target), str(shipped), digest).stdout.startswith("unpacked ")
    assert (target / "manage.py").read_text() == "print('v2')\n"
    assert os.access(target / "venv" / "bin" / "python", os.X_OK)
    assert not (target / ".installing").exists()
    assert not leftover.exists()
    assert not shipped.exists()  # removed whatever happens


def test_unpack_refuses_an_archive_whose_sha256_differs_and_changes_nothing(tmp_path):
    rel = built_release(tmp_path / "build")
    archive, digest = release_sh("pack", str(rel)).stdout.split()
    shipped = tmp_path / "shipped.tar.gz"
    shipped.write_bytes(Path(archive).read_bytes() + b"\0")
    shutil.rmtree(Path(archive).parent)
    target = tmp_path / "host" / "releases" / rel.name
    target.parent.mkdir(parents=True)
    out = release_sh("unpack", str(target), str(shipped), digest, check=False)
    assert out.returncode != 0
    assert f"not {digest} as packed on the build host" in out.stderr
    assert not target.exists()
    assert not shipped.exists()


def test_pack_refuses_an_unfinished_release(tmp_path):
    rel = built_release(tmp_path / "build")
    (rel / ".installing").write_text("")
    out = release_sh("pack", str(rel), check=False)
    assert out.returncode != 0 and "is not a finished release" in out.stderr
