"""Shared by the lab tests: run playbooks against inventories/lab, run commands in lab containers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "tests" / "output"
PORT = int(os.environ.get("OPSBOOK_LAB_HTTP_PORT", "8080"))
LAB = os.environ.get("OPSBOOK_LAB") or "opsbook-lab"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
BIN = Path(sys.executable).parent


def ansible_playbook(
    playbook: str, *extra: str, env: dict | None = None, inventory: str = "inventories/lab"
) -> tuple[subprocess.CompletedProcess, dict[str, int]]:
    """Run playbooks/<playbook> on the lab (env: more environment); return the process and changed= per host."""
    result = subprocess.run(
        [BIN / "ansible-playbook", "-i", inventory, f"playbooks/{playbook}", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_SHOW_CUSTOM_STATS": "1",
            **(env or {}),
        },
        timeout=900,
    )
    recap = {h: int(c) for h, c in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", result.stdout, re.MULTILINE)}
    return result, recap


def lab_exec(host: str, *argv: str, user: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run argv in the lab container of `host` (no shell)."""
    cmd = ["docker", "exec"] + (["--user", user] if user else []) + [f"{LAB}-{host}", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=300)


def as_app(host: str, *argv: str) -> subprocess.CompletedProcess:
    """argv on `host` as the app's user, with its env file, in the current release (relative paths resolve there)."""
    return lab_exec(
        host,
        "systemd-run", "--pipe", "--wait", "--collect", "--quiet", "--uid=journal", "--gid=journal",
        "--property=EnvironmentFile=/srv/journal/shared/env", "--property=WorkingDirectory=/srv/journal/current",
        *argv,
    )  # fmt: skip


def seed_demo(articles: int = 40, certificates: int = 5) -> None:
    """The sample app's deterministic demo data (the same arguments add nothing the second time)."""
    as_app("app1", "/srv/journal/current/venv/bin/python", "manage.py", "seed_demo",
           "--articles", str(articles), "--certificates", str(certificates))  # fmt: skip


def current_release(host: str) -> str:
    """The release the app's `current` link points at on host."""
    return lab_exec(host, "readlink", "/srv/journal/current").stdout.strip().removeprefix("releases/")


def deploy_same_ref_anew(*extra: str, hosts: tuple[str, ...] = ("app1", "app2")):
    """Deploy the ref served now as a new release; (the deploy, changed= per host, the release served before).

    Every host's REVISION file of the served release is made to say another revision (as a host
    left behind would), so each needs a new release of the same ref; they are put back afterwards.
    The lab stays on the ref it served (the demo's v1), so the tests after this one find it as
    the demo left it, without a second deploy to bring it back.
    """
    before = current_release(hosts[0])
    revision_file = f"/srv/journal/releases/{before}/REVISION"
    revisions = {host: lab_exec(host, "cat", revision_file).stdout for host in hosts}
    for host in hosts:
        lab_exec(host, "sh", "-c", f"echo 000000000000 > {revision_file}")
    try:
        result, recap = ansible_playbook("deploy.yml", "-e", f"deploy_ref={before.rsplit('-', 1)[1]}", *extra)
    finally:
        for host, revision in revisions.items():
            lab_exec(host, "sh", "-c", f"printf %s '{revision.strip()}' > {revision_file}")
    return result, recap, before


def lb_address(host: str = "lb1") -> str:
    """A lab host's address on the lab network: this machine sends load to lb1's ports there."""
    shown = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", f"{LAB}-{host}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return shown[0]


def lab_running() -> bool:
    result = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=org.opsbook.lab={LAB}"], capture_output=True, text=True, check=False
    )
    return bool(result.stdout.strip())


def task_hosts(output: str, task: str) -> list[str]:
    """The hosts the first task whose name holds `task` ran on (ok or changed), sorted."""
    hosts, inside = [], False
    for line in output.splitlines():
        if line.startswith("TASK ["):
            if inside:
                break
            inside = task in line
        elif inside and (m := re.match(r"^(?:changed|ok): \[([^\]]+)\]", line)):
            hosts.append(m.group(1))
    return sorted(hosts)


class PlaybookRuns:
    """The playbook runs of one lab test module on `inventory`, in order, each with its output, recap
    and wall time (`runs[name]`), their output in tests/output/<log>.log; `runs` also holds what the
    module records between them. A failed run fails the module's fixture, naming the run."""

    def __init__(self, log: str, inventory: str) -> None:
        self.inventory = inventory
        self.started = time.monotonic()
        self.runs: dict[str, dict] = {}
        self.log = (OUTPUT / f"{log}.log").open("w")

    def run(self, name: str, playbook: str, *extra: str) -> dict:
        t0 = time.monotonic()
        result, recap = ansible_playbook(playbook, *extra, inventory=self.inventory)
        seconds = round(time.monotonic() - t0)
        self.log.write(f"==== {name}: {playbook} {' '.join(extra)} ({seconds} s, rc {result.returncode})\n")
        self.log.write(result.stdout + result.stderr)
        self.log.flush()
        out = result.stdout + result.stderr
        self.runs[name] = {"rc": result.returncode, "out": out, "recap": recap, "s": seconds}
        assert result.returncode == 0, f"{name} failed:\n" + out[-5000:]
        return self.runs[name]

    def close(self) -> str:
        """Every run's wall time and the total, written to the log and returned."""
        self.runs["total"] = {"s": round(time.monotonic() - self.started)}
        times = ", ".join(f"{name} {run['s']} s" for name, run in self.runs.items() if "s" in run)
        self.log.write(f"==== wall time: {times}\n")
        self.log.close()
        return times


def app_psql(database: str, sql: str) -> str:
    """sql in database on db1, as postgres; the rows unaligned, without headers."""
    return lab_exec("db1", "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-d", database, "-c", sql).stdout.strip()


def slot_release(app: str, slot: str) -> str:
    """The release the blue-green slot's pointer of app names on app1."""
    return lab_exec("app1", "readlink", f"/srv/{app}/{slot}").stdout.strip().removeprefix("releases/")


def active_slot(app: str) -> str:
    """The slot lb1 serves for app (the blue-green state file)."""
    return lab_exec("lb1", "cat", f"/etc/opsbook/{app}-active-slot").stdout.strip()


# Provision's Redis tasks (roles/provision/tasks/redis.yml): absent from the output of a run for an
# app with app_redis false.
REDIS_TASKS = ("PROVISION | Install Redis", "PROVISION | Render Redis settings", "PROVISION | Start Redis")


def env_file_names(app: str, host: str) -> set[str]:
    """The variable names of the app's environment file (shared/env) on host; never its values."""
    text = lab_exec(host, "cat", f"/srv/{app}/shared/env").stdout
    return {line.split("=", 1)[0] for line in text.splitlines() if "=" in line and not line.startswith("#")}


def config_archive(app: str, host: str) -> list[str]:
    """The paths in the latest backup's configuration archive of host (config-<host>), on db1."""
    manifest = json.loads(lab_exec("db1", "cat", f"/var/backups/opsbook/{app}/latest.json").stdout)
    found = lab_exec(
        "db1", "find", f"/var/backups/opsbook/{app}", "-name", f"*{manifest['id']}-config-{host}.tar.gz"
    ).stdout.split()
    assert len(found) == 1, found
    return lab_exec("db1", "tar", "-tzf", found[0]).stdout.split()
