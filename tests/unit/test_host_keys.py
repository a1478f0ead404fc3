"""Host keys are verified for real servers and only the lab skips the check (issue 19, item 17).

A real sshd (Debian's openssh-server) listens on a free port with a host key made for the
test. `ansible` is run from the repository root, so the project's ansible.cfg is read as a
user's terminal run reads it, against a host of the production example and a host of the
lab inventory, both pointed at that sshd over SSH with an empty known_hosts file:

- production: the connection must stop at "Host key verification failed";
- production, the server's key in known_hosts: the check passes and the run gets as far as
  authentication (refused: the test has no account there), which shows the failure above came
  from the host key and not from the server being unusable;
- lab: the inventory turns the check off (its containers get new keys every time they are
  made), so the run also gets as far as authentication with the empty known_hosts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import helpers

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
HOSTKEY_FAILED = "Host key verification failed"
AUTH_REFUSED = "Permission denied"


class Sshd:
    def __init__(self, port: int, hostkey_pub: str, process: helpers.ManagedProcess) -> None:
        self.port = port
        self.hostkey_pub = hostkey_pub
        self.process = process


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not Path(SSHD).exists():
        pytest.fail(f"{SSHD} is missing: scripts/bootstrap.sh installs openssh-server", pytrace=False)
    work = tmp_path_factory.mktemp("sshd")
    key = work / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    port = helpers.free_port()
    config = work / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {work / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "AuthorizedKeysFile /dev/null\nUsePAM no\n"
    )
    # sshd wants its privilege separation directory; it exists once the service ran.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    process = helpers.ManagedProcess([SSHD, "-D", "-e", "-f", str(config)], log_path=work / "sshd.log", name="sshd")
    process.start()
    try:
        helpers.wait_until(lambda: _listening(port, process), timeout=15, what=f"sshd on port {port}")
        yield Sshd(port, (work / "ssh_host_ed25519_key.pub").read_text().split()[1], process)
    finally:
        process.stop()


def _listening(port: int, process: helpers.ManagedProcess) -> bool:
    process.check_alive()
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ansible(inventory: str, host: str, sshd: Sshd, known_hosts: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        # Only this test's known_hosts file, no agent, no multiplexing: one clean attempt.
        "ANSIBLE_SSH_ARGS": (
            f"-o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null -o ControlMaster=no"
        ),
        "SSH_AUTH_SOCK": "",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    env.pop("ANSIBLE_HOST_KEY_CHECKING", None)
    env.pop("ANSIBLE_CONFIG", None)
    return subprocess.run(
        [
            BIN / "ansible",
            "-i",
            inventory,
            host,
            "-m",
            "ansible.builtin.ping",
            "-e",
            "ansible_connection=ssh",
            "-e",
            "ansible_host=127.0.0.1",
            "-e",
            f"ansible_port={sshd.port}",
            "-e",
            "ansible_user=opsbook-nobody",
            "-e",
            "ansible_ssh_retries=0",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_inventory_refuses_an_unknown_host_key(sshd: Sshd, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    result = _ansible("inventories/production", "lb1.prod.example.com", sshd, known_hosts)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert HOSTKEY_FAILED in out, out


def test_production_inventory_accepts_a_known_host_key(sshd: Sshd, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 {sshd.hostkey_pub}\n")
    result = _ansible("inventories/production", "lb1.prod.example.com", sshd, known_hosts)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out  # no account for the test: authentication is refused
    assert HOSTKEY_FAILED not in out, out
    assert AUTH_REFUSED in out, out


def test_lab_inventory_skips_the_host_key_check(sshd: Sshd, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    result = _ansible("inventories/lab", "app1", sshd, known_hosts)
    out = result.stdout + result.stderr
    assert HOSTKEY_FAILED not in out, out
    assert AUTH_REFUSED in out, out
