"""health.yml judges the blue-green slot the load balancer serves (issue 19 item 11, the health side).

The demo leaves a second copy of the app (inventories/lab_bg, journal_bg) switched back to blue.
health.yml used to read only the state file on lb1 and take blue when it was missing; now the
slot comes from lb1's own nginx upstream (opsbook.webstack.live_slot), and a state file that
contradicts it is a critical finding rather than a silent choice.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from lab_helpers import BIN, ROOT, lab_exec

pytestmark = pytest.mark.lab
STATE = "/etc/opsbook/journal_bg-active-slot"


def health(report_dir: Path) -> dict:
    result = subprocess.run(
        [BIN / "ansible-playbook", "-i", "inventories/lab_bg", "playbooks/health.yml",
         "-e", f"maintenance_report_dir={report_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    [path] = sorted(report_dir.glob("health-*.json"))
    return json.loads(path.read_text())


def judged_slots(data: dict) -> set[str]:
    units = [f["subject"] for f in data["findings"] if f["check"] == "service" and f["host"] == "app1"]
    return {unit.split("-")[1].split(".")[0] for unit in units if unit.startswith("journal_bg-")}


def test_health_judges_the_served_slot_and_reports_a_contradicting_state_file(lab, tmp_path):
    recorded = lab_exec("lb1", "cat", STATE).stdout.strip()
    assert recorded in ("blue", "green")
    other = "green" if recorded == "blue" else "blue"
    try:
        lab_exec("lb1", "rm", "-f", STATE)
        data = health(tmp_path / "lost")
        assert judged_slots(data) == {recorded}, data["findings"]
        assert not [f for f in data["findings"] if f["check"] == "blue-green slot"]

        lab_exec("lb1", "sh", "-c", f"echo {other} > {STATE}")
        data = health(tmp_path / "contradicting")
        assert judged_slots(data) == {recorded}, data["findings"]
        [finding] = [f for f in data["findings"] if f["check"] == "blue-green slot"]
        assert finding["level"] == "critical" and finding["host"] == "lb1", finding
        assert f"says {other}" in finding["detail"] and f"sends traffic to {recorded}" in finding["detail"], finding
    finally:
        lab_exec("lb1", "sh", "-c", f"echo {recorded} > {STATE}")


def unit_states(host: str) -> str:
    units = [f"journal_bg-{slot}{kind}" for slot in ("blue", "green") for kind in (".service", "-worker.service")]
    return lab_exec(host, "systemctl", "show", "--property=Id,ActiveState,UnitFileState", "--", *units).stdout


def test_a_check_mode_switch_judges_the_idle_slot_and_changes_nothing(lab):
    """blue_green_switch.yml --check reads the idle slot's unit and health as a real switch does
    (before, both reads were skipped in check mode and every check-mode switch was refused), lists
    the units it would start and stop, and leaves the load balancer, the state file and the units."""
    recorded = lab_exec("lb1", "cat", STATE).stdout.strip()
    other = "green" if recorded == "blue" else "blue"
    before = {host: unit_states(host) for host in ("app1", "app2")}
    served = json.loads(lab_exec("lb1", "curl", "-s", "http://127.0.0.1:8081/version/").stdout)["version"]
    result = subprocess.run(
        [BIN / "ansible-playbook", "-i", "inventories/lab_bg", "playbooks/blue_green_switch.yml", "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    assert f"changed: [app1] => (item=journal_bg-{other}-worker.service)" in result.stdout, result.stdout[-4000:]
    assert f"changed: [app1] => (item=journal_bg-{recorded}-worker.service)" in result.stdout
    assert lab_exec("lb1", "cat", STATE).stdout.strip() == recorded
    assert json.loads(lab_exec("lb1", "curl", "-s", "http://127.0.0.1:8081/version/").stdout)["version"] == served
    assert {host: unit_states(host) for host in ("app1", "app2")} == before
