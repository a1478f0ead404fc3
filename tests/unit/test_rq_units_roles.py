"""The RQ units every role acts on come from one place (module_utils/slots.host_units).

provision writes them, deploy restarts them, restore stops them before the database swap (the
scheduler first, like Celery beat) and starts them after the web units, health expects them
active. The roles' variables are rendered here by ansible-playbook on this machine for an app
with Celery and RQ workers, so a role that drops or misorders an RQ unit fails this test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKERS = [
    {"name": "worker", "kind": "celery", "queues": ["celery"], "concurrency": 1},
    {"name": "beat", "kind": "celery-beat"},
    {"name": "rq", "kind": "rq", "queues": ["high", "default"], "count": 2},
    {"name": "rqsched", "kind": "rq-scheduler"},
]
ROLES = ("provision", "deploy", "restore", "maintenance")
ROLE_DEFAULTS = ("celery",)
SHOWN = {
    "provision": "__provision_units | map(attribute='unit') | list",
    "deploy_rq": "__deploy_rq_units",
    "restore_stop": "__restore_units",
    "restore_start": "__restore_start_units",
    "health": "__maintenance_units",
    "celery_queues": "celery_queues",
}

# The body of a Jinja dict literal of the names above: 'provision': __provision_units ..., ...
SHOWN_DICT = ", ".join(f"'{k}': {v}" for k, v in SHOWN.items())


def render(tmp_path: Path, host: str, backend: str = "rq") -> dict:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    groups = {"app": ["app1", "app2"], "worker": ["app1", "app2"], "scheduler": ["app1"]}
    children = {g: {"hosts": {h: local for h in hosts}} for g, hosts in groups.items()}
    inventory = {"all": {"vars": {"app_name": "sims", "app_workers": WORKERS}, "children": children}}
    for name in ("app", "worker", "scheduler", "db", "lb", "broker"):
        inventory["all"]["vars"][f"opsbook_group_{name}"] = name
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    roles = ROOT / "roles"
    play = [
        {
            "name": "Render",
            "hosts": host,
            "gather_facts": False,
            "vars": {"deploy_slot": "", "app_slots": {}, "maintenance_active_slot": ""},
            "vars_files": [str(roles / r / "vars" / "main.yml") for r in ROLES]
            + [str(roles / r / "defaults" / "main.yml") for r in ROLE_DEFAULTS],
            "tasks": [
                {
                    "name": "Show",
                    "ansible.builtin.debug": {"msg": "UNITS={{ {" + SHOWN_DICT + "} | to_json }}"},
                }
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "playbooks" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
    }
    env.pop("ANSIBLE_CONFIG", None)
    result = subprocess.run(
        [Path(sys.executable).parent / "ansible-playbook", "-i", tmp_path / "hosts.yml", tmp_path / "play.yml",
         "-e", f"celery_backend={backend}"],  # above the role defaults read as vars_files
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    found = re.search(r'"msg": "UNITS=(.*)"\n', result.stdout)
    assert result.returncode == 0 and found, result.stdout[-4000:]
    return json.loads(found[1].encode().decode("unicode_escape"))


def test_every_role_sees_the_same_rq_units_on_the_scheduler_host(tmp_path: Path) -> None:
    units = render(tmp_path, "app1")
    rq = ["sims-rq-1.service", "sims-rq-2.service", "sims-rqsched.service"]
    assert units["provision"] == [
        "sims.socket", "sims.service", "sims-worker.service", "sims-beat.service", *rq,
    ]  # fmt: skip
    assert units["deploy_rq"] == rq
    assert set(rq) <= set(units["health"])
    # Stop: beat, workers, the RQ scheduler before the RQ workers, then the web units last.
    assert units["restore_stop"] == [
        "sims-beat.service", "sims-worker.service", "sims-rqsched.service", "sims-rq-1.service",
        "sims-rq-2.service", "sims.socket", "sims.service",
    ]  # fmt: skip
    assert units["restore_start"][:2] == ["sims.socket", "sims.service"]
    assert sorted(units["restore_start"]) == sorted(units["restore_stop"])


def test_a_worker_host_gets_rq_workers_but_not_the_scheduler(tmp_path: Path) -> None:
    units = render(tmp_path, "app2")
    assert units["deploy_rq"] == ["sims-rq-1.service", "sims-rq-2.service"]
    assert "sims-rqsched.service" not in units["restore_stop"] + units["provision"] + units["health"]


def test_celery_yml_inspects_the_queues_of_its_backends_workers(tmp_path: Path) -> None:
    assert render(tmp_path / "rq", "app1", "rq")["celery_queues"] == ["high", "default"]
    assert render(tmp_path / "celery", "app1", "celery")["celery_queues"] == ["celery"]
