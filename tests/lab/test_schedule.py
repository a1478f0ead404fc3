"""Schedules (issue 23 item 7): systemd timers on lb1 that run the collection's playbooks for real.

lb1 is the lab's operations host: it is not the database or an app host (a scheduled backup or
restore drill keeps running while those are being worked on), it already holds the backup copies,
and it reaches every host over SSH as a production controller does (inventories/lab_ssh).
The fixture makes it an operator's controller: ansible-core in a virtualenv (wheels downloaded
on this machine: the containers do not reach PyPI), the two collections the playbooks need, the
project under /opt/opsbook, and the lab's SSH key and known_hosts at the paths lab_ssh reads.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from lab_helpers import BIN, LAB, ROOT, ansible_playbook, lab_exec

pytestmark = pytest.mark.lab

CACHE = Path.home() / ".cache" / "opsbook"
VENV = "/opt/opsbook-ansible"
COLLECTIONS = "/opt/opsbook-collections"
PROJECT = "/opt/opsbook"
REPORTS = "/var/lib/opsbook/reports"
SECRET = "s3cr3t-token-not-in-units"
UNITS = "/etc/systemd/system"


def sh(host: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
    return lab_exec(host, "bash", "-c", script, check=check)


def copy_tree(host: str, source: Path, dest: str, excludes: tuple[str, ...] = ()) -> None:
    """source's contents into dest on the host, through docker exec's stdin (symlinks kept)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(source, arcname=".", filter=lambda info: None if info.name.lstrip("./").startswith(excludes) else info)
    sh(host, f"mkdir -p {dest}")
    subprocess.run(
        ["docker", "exec", "-i", f"{LAB}-{host}", "tar", "-C", dest, "-x"], input=buffer.getvalue(), check=True
    )


@pytest.fixture(scope="module")
def ops_host(lab):
    """lb1 with Ansible, the project, the inventory's collections and SSH access to the lab."""
    core = subprocess.run([BIN / "ansible", "--version"], capture_output=True, text=True, check=True).stdout
    version = re.search(r"core ([0-9.]+)", core).group(1)
    wheels = CACHE / f"schedule-wheels-{version}"
    if not (wheels / "done").exists():
        subprocess.run(
            [BIN / "pip", "download", "-q", "-d", wheels, f"ansible-core=={version}"], check=True, timeout=600
        )
        (wheels / "done").touch()
    if sh("lb1", f"test -x {VENV}/bin/ansible-playbook", check=False).returncode != 0:
        copy_tree("lb1", wheels, "/tmp/ansible-wheels")
        sh(
            "lb1",
            f"python3 -m venv {VENV} && {VENV}/bin/pip install -q --no-index"
            " --find-links /tmp/ansible-wheels ansible-core",
        )
    site = BIN.parent / "lib" / "python3.11" / "site-packages" / "ansible_collections"
    for name in ("community/postgresql", "community/crypto"):
        copy_tree("lb1", site / name, f"{COLLECTIONS}/ansible_collections/{name}")
    sh("lb1", f"rm -rf {PROJECT}")
    copy_tree("lb1", ROOT, PROJECT, excludes=(".venv", ".git", "tests/output", "bench/results"))
    key = CACHE / "lab-ssh" / "id_ed25519"
    copy_tree("lb1", key.parent, str(key.parent))
    copy_tree("lb1", CACHE / "labs" / LAB, str(CACHE / "labs" / LAB))
    sh("lb1", f"chmod 0600 {key}")
    yield
    schedule([])  # no timers left behind for the tests after this one
    sh("lb1", f"rm -rf {key.parent} {CACHE / 'labs'} {REPORTS}", check=False)  # in lb1, not here


def job_vars(jobs: list[dict]) -> dict:
    return {
        "schedule_host": "lb1",
        "schedule_jobs": jobs,
        "schedule_project_dir": PROJECT,
        "schedule_inventory": "inventories/lab_ssh",
        "schedule_ansible_playbook": f"{VENV}/bin/ansible-playbook",
        "schedule_environment": {
            "ANSIBLE_COLLECTIONS_PATH": f"{PROJECT}/playbooks/collections:{COLLECTIONS}",
            "OPSBOOK_LAB": LAB,
            "OPSBOOK_REPORT_DIR": REPORTS,
        },
    }


def schedule(jobs: list[dict], tmp: Path | None = None, *extra: str):
    path = (tmp or Path("/tmp")) / f"schedule-vars-{LAB}.json"
    path.write_text(json.dumps(job_vars(jobs)))
    try:
        return ansible_playbook("schedule.yml", "-e", f"@{path}", *extra)
    finally:
        path.unlink()


# The job that is started for real: a cheap playbook of the collection (validate, then the
# maintenance page switched off on lb1 over SSH, nothing else included) proves the same wiring as
# a heavy one (the unit, its flock, inventory, environment and 0600 variables file, SSH from lb1);
# health.yml on every host over SSH ran every health check and proved nothing more about the timers.
PAGE = {
    "name": "page",
    "playbook": "maintenance.yml",
    "on_calendar": "*-*-* 06:00",
    "extra_vars": {"maintenance_page": "off", "opsbook_test_token": SECRET},
}
BACKUP = {"name": "backup", "playbook": "backup.yml", "on_calendar": "*-*-* 02:00", "randomized_delay_sec": 600}
BROKEN = {"name": "broken", "command": ["/bin/false"], "on_calendar": "Sun *-*-* 05:00", "lock": False}


def units() -> set[str]:
    listed = sh("lb1", f"ls {UNITS} | grep '^opsbook-schedule-' || true").stdout.split()
    return set(listed)


def show(unit: str, *props: str) -> dict[str, str]:
    out = sh("lb1", f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_a_bad_on_calendar_is_refused_before_anything_changes(ops_host, tmp_path):
    result, _ = schedule([PAGE, {**BACKUP, "on_calendar": "every day at two"}], tmp_path)
    assert result.returncode != 0
    assert "schedule_jobs[backup].on_calendar" in result.stdout and "Nothing was changed" in result.stdout
    assert units() == set()


def test_timers_run_the_playbooks_and_health_reports_their_last_result(ops_host, tmp_path):
    result, recap = schedule([PAGE, BACKUP, BROKEN], tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap["lb1"] > 0
    names = {f"opsbook-schedule-{n}.{k}" for n in ("page", "backup", "broken") for k in ("service", "timer")}
    assert units() == names
    for name in ("page", "backup", "broken"):
        timer = show(f"opsbook-schedule-{name}.timer", "ActiveState", "NextElapseUSecRealtime")
        assert timer["ActiveState"] == "active" and timer["NextElapseUSecRealtime"], timer
    timer_file = sh("lb1", f"cat {UNITS}/opsbook-schedule-backup.timer").stdout
    assert "OnCalendar=*-*-* 02:00" in timer_file and "Persistent=true" in timer_file
    assert "RandomizedDelaySec=600" in timer_file
    service = sh("lb1", f"cat {UNITS}/opsbook-schedule-page.service").stdout
    assert "Type=oneshot" in service and '"/usr/bin/flock" "/run/lock/opsbook-schedule.lock"' in service
    # The extra variables are in a 0600 file the command names, never in the unit or the output.
    assert '-e" "@/etc/opsbook/schedule/page.vars.yml"' in service
    assert sh(
        "lb1", "stat -c %a /etc/opsbook/schedule/page.vars.yml /etc/opsbook/schedule/environment"
    ).stdout.split() == ["600", "600"]
    assert SECRET in sh("lb1", "cat /etc/opsbook/schedule/page.vars.yml").stdout
    shown = sh("lb1", "systemctl show -p ExecStart -p Environment opsbook-schedule-page.service").stdout
    for text in (service, shown, result.stdout):
        assert SECRET not in text

    again, recap = schedule([PAGE, BACKUP, BROKEN], tmp_path)
    assert again.returncode == 0 and recap["lb1"] == 0, again.stdout[-3000:]

    # A job that fails, then the page job for real: systemctl start waits for a oneshot to end.
    assert sh("lb1", "systemctl start opsbook-schedule-broken.service", check=False).returncode != 0
    started = sh("lb1", "systemctl start opsbook-schedule-page.service", check=False)
    journal = sh("lb1", "journalctl -u opsbook-schedule-page.service -o cat --no-pager | tail -40").stdout
    assert started.returncode == 0, journal
    assert show("opsbook-schedule-page.service", "Result")["Result"] == "success"
    assert "PLAY RECAP" in journal and SECRET not in journal
    # The playbook reached lb1 over SSH (inventories/lab_ssh, the key and known_hosts on lb1)
    # and ran the page role there: ok=1 or more, nothing unreachable or failed.
    assert re.search(r"^lb1\s+: ok=[1-9]\d*\s+changed=\d+\s+unreachable=0\s+failed=0", journal, re.MULTILINE), journal

    # health.yml (from this controller, lb1 only) shows each timer's last result.
    checked, _ = ansible_playbook("health.yml", "--limit", "lb1:localhost", env={"OPSBOOK_REPORT_DIR": str(tmp_path)})
    assert checked.returncode == 0, checked.stdout[-4000:]
    [report] = tmp_path.glob("health-*.json")
    jobs = {f["subject"]: f for f in json.loads(report.read_text())["findings"] if f["check"] == "scheduled job"}
    assert set(jobs) == {"opsbook-schedule-page", "opsbook-schedule-backup", "opsbook-schedule-broken"}
    assert (
        jobs["opsbook-schedule-page"]["level"] == "ok" and "Result=success" in jobs["opsbook-schedule-page"]["detail"]
    )
    assert (
        "next " in jobs["opsbook-schedule-page"]["detail"] and "last trigger" in jobs["opsbook-schedule-page"]["detail"]
    )
    assert (
        jobs["opsbook-schedule-broken"]["level"] == "warning"
        and "Result=exit-code" in jobs["opsbook-schedule-broken"]["detail"]
    )
    assert jobs["opsbook-schedule-backup"]["level"] == "ok" and "never run" in jobs["opsbook-schedule-backup"]["detail"]


def test_a_job_removed_from_the_list_loses_its_timer(ops_host, tmp_path):
    result, recap = schedule([PAGE], tmp_path)
    assert result.returncode == 0 and recap["lb1"] > 0, result.stdout[-4000:]
    assert units() == {"opsbook-schedule-page.service", "opsbook-schedule-page.timer"}
    for name in ("backup", "broken"):
        assert show(f"opsbook-schedule-{name}.timer", "LoadState")["LoadState"] == "not-found"
    assert sh("lb1", "ls /etc/opsbook/schedule").stdout.split() == ["environment", "page.vars.yml"]
    again, recap = schedule([PAGE], tmp_path)
    assert again.returncode == 0 and recap["lb1"] == 0
