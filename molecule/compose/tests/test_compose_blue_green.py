"""Blue-green under app_runtime compose (issue 20 item 1): two compose projects per host behind the proxy.

A second app on the scenario's hosts (vars/blue_green.yml, passed as extra variables): the projects
journalbg-blue (port 8011) and journalbg-green (port 8012) on mc-app1 (web, worker, rq, beat) and
mc-app2 (web, worker, rq), served by mc-lb1 on port 8081. Runs after test_compose.py (file order),
on the engines it provisioned; the tests build on each other: v1 into blue, v2 into green and the
switch under load, the switch back under load, health.yml, and retiring the idle slot. (A slot failing
its gate goes back by the deploy role's recover, which the rolling tests and the systemd blue_green
scenario prove; it is not run again here, to keep the suite's time.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(PROJECT_DIR / "tests" / "molecule"), str(PROJECT_DIR / "tests" / "lab")]

from molecule_scenario import SCENARIO_DIR, host, no_failed_request, playbook, under_load  # noqa: E402

LBS = ("mc-lb1",)
PORT = 8081
APP_HOSTS = ("mc-app1", "mc-app2")
HOSTS = {name: host(name) for name in (*LBS, *APP_HOSTS, "mc-db1")}
# PostgreSQL: the service db of the project journal on mc-db1 (tests/test_compose_db.py).
DB_CONTAINER = (
    "$(docker ps -q --filter label=com.docker.compose.project=journal --filter label=com.docker.compose.service=db)"
)
SERVICES = {"mc-app1": ["beat", "rq", "web", "worker"], "mc-app2": ["rq", "web", "worker"]}
BG = ("-e", f"@{SCENARIO_DIR / 'vars' / 'blue_green.yml'}")


def bg(name: str, *extra: str):
    result, recap = playbook(name, *BG, *extra)
    return result, recap


def pointer(name: str, slot: str) -> str:
    return HOSTS[name].run(f"readlink /srv/journalbg/{slot}").stdout.strip().removeprefix("releases/")


def served(n: int = 6) -> set[str]:
    versions = set()
    for _ in range(n):
        out = HOSTS["mc-lb1"].run(f"curl -s --max-time 10 http://127.0.0.1:{PORT}/version/")
        versions.add(json.loads(out.stdout or "{}").get("version", "?"))
    return versions


def slot_containers(name: str, slot: str) -> dict[str, dict]:
    """Every container of the project journalbg-<slot> on host name: {service: {image, state}}."""
    out = HOSTS[name].run(
        f"docker ps -a --filter label=com.docker.compose.project=journalbg-{slot} --format "
        "'{{.Label \"com.docker.compose.service\"}} {{.Image}} {{.State}}'"
    )
    assert out.rc == 0, out.stderr
    return {
        service: {"image": image, "state": state} for service, image, state in map(str.split, out.stdout.splitlines())
    }


def slot_runs(slot: str, release: str, services: str = "all") -> None:
    """The slot's project runs release: every service (all), or its web only with the rest stopped (web)."""
    for name in APP_HOSTS:
        found = slot_containers(name, slot)
        running = sorted(s for s, c in found.items() if c["state"] == "running")
        assert running == (SERVICES[name] if services == "all" else ["web"]), (name, slot, found)
        for service in running:
            assert found[service]["image"] == f"journalbg:{release}", (name, slot, service, found)


def live_slot() -> str:
    return HOSTS["mc-lb1"].run("cat /etc/opsbook/journalbg-active-slot").stdout.strip()


def test_v1_goes_to_blue_and_serves():
    # The team's database set-up: journalbg's role and database in the PostgreSQL of the project
    # journal on mc-db1 (provision leaves a database in a container to its owners).
    for statement in (
        "CREATE ROLE journalbg LOGIN PASSWORD 'journalbg-lab-password'",
        "CREATE DATABASE journalbg OWNER journalbg",
    ):
        out = HOSTS["mc-db1"].run(f"docker exec --user postgres {DB_CONTAINER} psql -XAt -d postgres -c %s", statement)
        assert out.rc == 0, out.stderr
    result, _ = bg("provision.yml")
    assert result.returncode == 0, result.stdout[-6000:]
    result, _ = bg("blue_green.yml", "-e", "deploy_ref=v1")
    assert result.returncode == 0, result.stdout[-6000:]
    v1 = pointer("mc-app1", "blue")
    assert v1.endswith("-v1") and pointer("mc-app2", "blue") == v1
    slot_runs("blue", v1)
    assert not any(slot_containers(h, "green") for h in APP_HOSTS)
    assert served() == {v1}


def test_v2_goes_to_green_and_the_switch_fails_no_request():
    v1 = pointer("mc-app1", "blue")
    (result, _), counts = under_load(LBS, lambda: bg("blue_green.yml", "-e", "deploy_ref=v2"), port=PORT)
    assert result.returncode == 0, result.stdout[-6000:]
    no_failed_request(counts, at_least=300)
    assert sorted(v.rsplit("-", 1)[-1] for v in counts["mc-lb1"]["versions"]) == ["v1", "v2"], counts
    v2 = pointer("mc-app1", "green")
    assert v2.endswith("-v2") and pointer("mc-app2", "green") == v2
    assert live_slot() == "green" and served() == {v2}
    # The workers followed the switch: green runs everything; blue only its web, for the switch-back.
    slot_runs("green", v2)
    slot_runs("blue", v1, services="web")
    assert sum(c["state"] == "running" for h in APP_HOSTS for s in ("blue", "green")
               for svc, c in slot_containers(h, s).items() if svc == "beat") == 1  # fmt: skip


def test_the_switch_back_fails_no_request_and_moves_the_workers():
    v1, v2 = pointer("mc-app1", "blue"), pointer("mc-app1", "green")
    (result, _), counts = under_load(LBS, lambda: bg("blue_green_switch.yml"), port=PORT)
    assert result.returncode == 0, result.stdout[-6000:]
    no_failed_request(counts, at_least=100)
    assert live_slot() == "blue" and served() == {v1}
    slot_runs("blue", v1)
    slot_runs("green", v2, services="web")


def test_health_judges_the_live_slots_project(tmp_path):
    result, _ = bg("health.yml", "-e", f"maintenance_report_dir={tmp_path}")
    assert result.returncode == 0, result.stdout[-6000:]
    [path] = sorted(tmp_path.glob("health-*.json"))
    found = {(f["host"], f["subject"]): f["level"] for f in json.loads(path.read_text())["findings"]
             if f["check"] == "container"}  # fmt: skip
    assert found == {(h, f"journalbg-blue-{s}-1"): "ok" for h in APP_HOSTS for s in SERVICES[h]}, found


def test_retire_stops_the_idle_slot():
    v1 = pointer("mc-app1", "blue")
    result, _ = bg("blue_green_retire.yml", "-e", "blue_green_soak_seconds=0")
    assert result.returncode == 0, result.stdout[-6000:]
    for name in APP_HOSTS:
        assert {c["state"] for c in slot_containers(name, "green").values()} == {"exited"}, name
    slot_runs("blue", v1)
    assert served() == {v1}
