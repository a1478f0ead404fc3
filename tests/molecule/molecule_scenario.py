"""What the Molecule scenarios' testinfra tests share: hosts, playbook runs, load through a balancer.

Imported by molecule/<scenario>/tests/test_*.py under `molecule verify`, which sets
MOLECULE_INVENTORY_FILE and MOLECULE_SCENARIO_DIRECTORY; they put this directory and
tests/lab (the load generator) on sys.path first:

    sys.path[:0] = [str(PROJECT_DIR / "tests" / "molecule"), str(PROJECT_DIR / "tests" / "lab")]
    from molecule_scenario import host, playbook, under_load
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import testinfra
from loadgen import LoadGenerator

PROJECT_DIR = Path(__file__).resolve().parents[2]
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO_DIR = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
ENV = {
    **os.environ,
    "ANSIBLE_COLLECTIONS_PATH": f"{PROJECT_DIR}/playbooks/collections",
    "ANSIBLE_ROLES_PATH": f"{PROJECT_DIR}/roles",
    "ANSIBLE_FORCE_COLOR": "0",
    "ANSIBLE_NOCOLOR": "1",
    "ANSIBLE_SHOW_CUSTOM_STATS": "1",
}
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", re.MULTILINE)
# Requests per second through each load balancer while a playbook runs. Paced: on two cores
# an unpaced generator (and the app answering it) takes the CPU the run under test needs.
# A break in service of more than a few tens of milliseconds still meets requests; the
# benchmarks (bench/) send more.
LOAD_RATE = 50
T = TypeVar("T")


def host(name: str, inventory: str = INVENTORY):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")


def run(*argv: str | Path, timeout: int = 1200) -> subprocess.CompletedProcess:
    """argv with stderr folded into stdout (under Molecule, Ansible writes failures to stderr)."""
    return subprocess.run(
        [str(a) for a in argv],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=SCENARIO_DIR, timeout=timeout,
    )  # fmt: skip


def playbook(
    name: str, *extra: str, inventory: str = INVENTORY, timeout: int = 1200
) -> tuple[subprocess.CompletedProcess, dict[str, int]]:
    """ansible-playbook playbooks/<name> with the scenario's inventory; the result and changed= per host."""
    result = run("ansible-playbook", "-i", inventory, PROJECT_DIR / "playbooks" / name, *extra, timeout=timeout)
    return result, {h: int(c) for h, c in RECAP.findall(result.stdout)}


def popen_playbook(name: str, *extra: str, inventory: str = INVENTORY) -> subprocess.Popen:
    """The same, started in the background (read its output with communicate())."""
    return subprocess.Popen(
        ["ansible-playbook", "-i", inventory, str(PROJECT_DIR / "playbooks" / name), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=SCENARIO_DIR,
    )  # fmt: skip


def address(container: str) -> str:
    """A container's address on its scenario network (reachable from this controller)."""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.split()[0]


def under_load(
    lbs: tuple[str, ...], action: Callable[[], T], port: int = 80, path: str = "/version/", rate: float = LOAD_RATE
) -> tuple[T, dict[str, dict]]:
    """action() while each load balancer gets `rate` requests/s; its result and the counts per balancer."""
    loads = {lb: LoadGenerator(f"http://{address(lb)}:{port}{path}", threads=4, rate=rate).start() for lb in lbs}
    try:
        outcome = action()
    finally:
        counts = {lb: load.stop() for lb, load in loads.items()}
    print(f"\nload through the load balancers: {json.dumps(counts)}")
    return outcome, counts


def no_failed_request(counts: dict[str, dict], at_least: int = 100) -> None:
    for lb, c in counts.items():
        assert c["failed"] == 0 and c["sent"] >= at_least, (lb, c)
