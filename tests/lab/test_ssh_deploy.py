"""The lab over SSH (inventories/lab_ssh): host keys checked, a deploy under load.

scripts/lab.sh up wrote $OPSBOOK_CACHE/labs/<lab>/known_hosts from each container's own host
key and an ssh_config with their addresses. One deploy of another ref over SSH, through lb1
under constant load, must lose no request. A known_hosts holding another key must stop the
connection.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from lab_helpers import BIN, LAB, PORT, ROOT, lab_exec
from loadgen import LoadGenerator

pytestmark = pytest.mark.lab

CACHE = Path(os.environ.get("OPSBOOK_CACHE") or Path.home() / ".cache" / "opsbook")
STATE = CACHE / "labs" / LAB


def run(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", **(env or {})},
        timeout=900,
    )


def deploy_over_ssh(*extra: str) -> tuple[subprocess.CompletedProcess, dict[str, int]]:
    result = run([str(BIN / "ansible-playbook"), "-i", "inventories/lab_ssh", "playbooks/deploy.yml", *extra])
    recap = {h: int(c) for h, c in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", result.stdout, re.MULTILINE)}
    return result, recap


def served_version() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/version/", timeout=10) as response:
        return json.load(response)["version"]


def test_lab_wrote_known_hosts_from_each_containers_own_key(lab):
    assert (STATE / "known_hosts").is_file(), (
        f"scripts/lab.sh up wrote no {STATE}/known_hosts: were the containers made from an image "
        "without sshd? Recreate the lab (scripts/lab.sh down; scripts/lab.sh up)"
    )
    known = (STATE / "known_hosts").read_text().splitlines()
    keys = {}
    for line in known:
        name, kind, key = line.split()
        keys[name] = (kind, key)
    assert set(keys) == {f"{LAB}-{h}" for h in ("lb1", "app1", "app2", "db1")}, known
    for name, (kind, key) in keys.items():
        host = name.removeprefix(f"{LAB}-")
        assert lab_exec(host, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2] == [kind, key]
    # Every container made its own keys (none baked into the image).
    assert len({key for _, key in keys.values()}) == len(keys)


def test_a_host_key_other_than_the_labs_is_refused(lab, tmp_path):
    # The same ssh_config, but a known_hosts that pairs app1 with lb1's key; a control
    # directory of its own, so no open master connection skips the check.
    state = tmp_path / "labs" / LAB
    state.mkdir(parents=True)
    shutil.copy(STATE / "ssh_config", state / "ssh_config")
    lines = (STATE / "known_hosts").read_text().splitlines()
    lb1_key = next(line.split(None, 1)[1] for line in lines if line.startswith(f"{LAB}-lb1 "))
    (state / "known_hosts").write_text(f"{LAB}-app1 {lb1_key}\n")
    env = {"OPSBOOK_CACHE": str(tmp_path), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp")}
    # raw: nothing is written to ssh's stdin. A module (ping) goes in on stdin with pipelining, and
    # when ssh refuses the key before reading it, Ansible reports only "Broken pipe", not why
    # (seen on a quiet machine: the refusal was there, its message was not).
    ping = ["-m", "ansible.builtin.raw", "-a", "true"]
    result = run([str(BIN / "ansible"), "-i", "inventories/lab_ssh", "app1", *ping], env)
    assert result.returncode != 0
    assert "UNREACHABLE" in result.stdout, result.stdout[-2000:]
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stdout + result.stderr, result.stdout[-2000:]
    # With the lab's own known_hosts the same command answers (over SSH: the inventory's connection).
    result = run([str(BIN / "ansible"), "-i", "inventories/lab_ssh", "app1", "-m", "ansible.builtin.ping", "-vvv"])
    assert result.returncode == 0, result.stdout[-2000:]
    assert "SSH: EXEC ssh" in result.stdout


def test_deploy_over_ssh_under_load_loses_no_request(lab):
    before = served_version()
    other = "v1" if before.endswith("-v2") else "v2"
    load = LoadGenerator(f"http://127.0.0.1:{PORT}/version/", threads=4, rate=50).start()
    try:
        result, recap = deploy_over_ssh("-e", f"deploy_ref={other}")
    finally:
        counts = load.stop()
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap["app1"] > 0 and recap["app2"] > 0, recap
    assert counts["sent"] > 0 and counts["failed"] == 0, counts
    assert served_version().endswith(f"-{other}")
    for host in ("app1", "app2"):
        current = lab_exec(host, "readlink", "/srv/journal/current").stdout.strip()
        assert current.endswith(f"-{other}"), (host, current)

    # A re-run changing nothing is the deploy's, whatever the connection: test_demo.py's re-run
    # and the Molecule scenario deploy prove it; a second deploy over SSH proved nothing more.
