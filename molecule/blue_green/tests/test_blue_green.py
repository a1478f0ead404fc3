"""blue_green, checked after converge (provision, v1 on blue) and idempotence.

The tests run in file order against bg-lb1 (nginx), bg-lb2 (HAProxy), bg-app1 (both slots,
workers, beat), bg-app2 (both slots, workers) and bg-db1. Every switch runs under constant
load through both load balancers; the counts are printed (pytest -s, or the Molecule log).
"""

import json
import re
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[3]
sys.path[:0] = [
    str(PROJECT_DIR / "tests" / "molecule"),
    str(PROJECT_DIR / "tests" / "lab"),
    str(PROJECT_DIR / "playbooks" / "collections"),
]

from ansible_collections.opsbook.webstack.plugins.module_utils.slots import backends, served_slot  # noqa: E402
from molecule_scenario import INVENTORY, SCENARIO_DIR, host, no_failed_request, playbook, popen_playbook  # noqa: E402
from molecule_scenario import under_load as load_through  # noqa: E402

LBS = ["bg-lb1", "bg-lb2"]
APPS = ["bg-app1", "bg-app2"]
HOSTS = {name: host(name) for name in [*LBS, *APPS, "bg-db1"]}


def under_load(
    name: str, *extra: str, port: int = 80, lbs: tuple[str, ...] = tuple(LBS), inventory: str = INVENTORY
) -> tuple:
    """Run a playbook under constant load through each load balancer; result, recap, counts per LB."""
    (result, recap), counts = load_through(lbs, lambda: playbook(name, *extra, inventory=inventory), port=port)
    return result, recap, counts


def served(lb: str, port: int = 80, n: int = 6) -> set[str]:
    versions = set()
    for _ in range(n):
        out = HOSTS[lb].run(f"curl -s --max-time 5 http://127.0.0.1:{port}/version/")
        versions.add(json.loads(out.stdout or "{}").get("version", "?"))
    return versions


def pointer(app: str, slot: str, root: str = "/srv/journal") -> str:
    return HOSTS[app].run(f"readlink {root}/{slot}").stdout.strip().removeprefix("releases/")


def active_units(app: str, *units: str) -> list[str]:
    return [u for u in units if HOSTS[app].run(f"systemctl is-active {u}").stdout.strip() == "active"]


def state(lb: str, app: str = "journal") -> str:
    return HOSTS[lb].run(f"cat /etc/opsbook/{app}-active-slot").stdout.strip()


def fact(name: str, app: str = "journal") -> dict:
    return json.loads(HOSTS[name].run("cat /etc/ansible/facts.d/opsbook_blue_green.fact").stdout)[app]


def assert_active(slot: str, release_ref: str) -> None:
    other = "green" if slot == "blue" else "blue"
    for lb in LBS:
        assert state(lb) == slot, lb
        assert fact(lb)["active"] == slot
        [version] = served(lb)
        assert version.endswith(f"-{release_ref}") and version == pointer("bg-app1", slot), (lb, version)
    for app in APPS:
        assert active_units(app, f"journal-{slot}.service", f"journal-{slot}-worker.service") == [
            f"journal-{slot}.service",
            f"journal-{slot}-worker.service",
        ], app
        assert active_units(app, f"journal-{other}-worker.service", f"journal-{other}-beat.service") == [], app
    # exactly one beat, the active slot's, on the scheduler
    beats = [(a, u) for a in APPS for u in active_units(a, "journal-blue-beat.service", "journal-green-beat.service")]
    assert beats == [("bg-app1", f"journal-{slot}-beat.service")]


def test_converge_put_v1_on_blue_behind_both_load_balancers():
    assert_active("blue", "v1")
    assert pointer("bg-app1", "green") == ""
    # nginx lists only the active slot; HAProxy both, the idle one disabled
    upstream = HOSTS["bg-lb1"].file("/etc/nginx/opsbook/journal-upstream.conf").content_string
    assert re.findall(r"server (\S+) ", upstream) == ["bg-app1:8001", "bg-app2:8001"]
    cfg = HOSTS["bg-lb2"].file("/etc/haproxy/haproxy.cfg").content_string
    assert re.findall(r"server (bg-app\d-\w+) \S+ .*?( disabled)?$", cfg, re.MULTILINE) == [
        ("bg-app1-blue", ""),
        ("bg-app2-blue", ""),
        ("bg-app1-green", " disabled"),
        ("bg-app2-green", " disabled"),
    ]


def releases(app: str) -> list[str]:
    return sorted(HOSTS[app].run("ls /srv/journal/releases").stdout.split())


def snapshot() -> dict:
    """What a blue-green run changes: releases, slot pointers, each LB's state and configuration."""
    return {
        "releases": {app: releases(app) for app in APPS},
        "pointers": {(app, slot): pointer(app, slot) for app in APPS for slot in ("blue", "green")},
        "lbs": {lb: (state(lb), fact(lb)) for lb in LBS},
        "upstream": HOSTS["bg-lb1"].file("/etc/nginx/opsbook/journal-upstream.conf").content_string,
        "haproxy": HOSTS["bg-lb2"].file("/etc/haproxy/haproxy.cfg").content_string,
    }


def test_v2_goes_to_green_and_the_switch_drops_no_request():
    result, _, counts = under_load("blue_green.yml", "-e", "deploy_ref=v2")
    assert result.returncode == 0, result.stdout[-6000:]
    no_failed_request(counts)
    for lb, c in counts.items():  # the switch happened while the load ran: both releases answered
        assert sorted(v.rsplit("-", 1)[-1] for v in c["versions"]) == ["v1", "v2"], (lb, c)
    assert_active("green", "v2")
    # the old slot keeps serving its release directly, for an instant switch-back
    assert pointer("bg-app2", "blue").endswith("-v1")
    assert active_units("bg-app2", "journal-blue.service") == ["journal-blue.service"]
    sql = "SELECT count(*) FROM django_migrations WHERE name = '0002_article_summary'"
    migrated = HOSTS["bg-db1"].run("runuser -u postgres -- psql -d journal -tAc %s", sql)
    assert migrated.stdout.strip() == "1"
    assert "blue_green_active" in result.stdout and '"green"' in result.stdout  # set_stats


STATE_FILE = "/etc/opsbook/journal-active-slot"
UPSTREAM = "/etc/nginx/opsbook/journal-upstream.conf"


def test_both_load_balancers_configurations_say_green():
    """What the live slot is read from when the state file is lost: the configurations as the switch left them."""
    slots = {"blue": {"group": "app", "port": 8001}, "green": {"group": "app", "port": 8002}}  # group_vars
    servers = backends(slots, {"app": APPS}, "app", 0)
    assert served_slot("nginx", HOSTS["bg-lb1"].file(UPSTREAM).content_string, servers) == ("green", "")
    cfg = HOSTS["bg-lb2"].file("/etc/haproxy/haproxy.cfg").content_string
    assert served_slot("haproxy", cfg, servers, "journal_app") == ("green", "")


# The deploy role's check-mode line per host (roles/deploy/tasks/install.yml); group 1 is
# the release it would switch from.
WOULD_INSTALL_V3 = re.compile(
    r"would install release \S+ \(v3 at \w+\), built (?:here|on \S+ and shipped here), and switch from (\S+)\""
)


def test_a_lost_state_file_is_read_from_the_load_balancer_and_the_deploy_goes_to_blue():
    """Issue 19 item 11: green serves, and the state file on bg-lb1 (the first load balancer) is gone.

    The plan must read green from nginx's upstream and deploy to blue, the idle slot; before the
    fix it assumed blue and deployed into green. In check mode: the plan and the deploy role's
    report name the slot, and nothing changes (releases, pointers, both load balancers' state
    and configuration, no deploy lock left). This is the scenario's check-mode test: a separate
    check-mode run with the state file in place proved nothing this one does not.
    """
    blue, green = pointer("bg-app1", "blue"), pointer("bg-app1", "green")
    assert HOSTS["bg-lb1"].run(f"rm {STATE_FILE}").rc == 0
    try:
        before = snapshot()
        result, _ = playbook("blue_green.yml", "-e", "deploy_ref=v3", "--check")
        assert result.returncode == 0, result.stdout[-6000:]
        out = " ".join(result.stdout.split())
        # the deploy role's check-mode report, per host: the release it would replace is blue's
        switches = re.findall(WOULD_INSTALL_V3, out)
        assert switches == [blue, blue], (switches, green, out[-6000:])
        assert (
            f"Live slot: green ({UPSTREAM} (nginx) on bg-lb1 sends traffic to green; {STATE_FILE} is missing)."
            " Deploying v3 to blue (the idle slot) on bg-app1, bg-app2." in out
        ), out[-6000:]
        assert green not in switches
        assert snapshot() == before
        assert HOSTS["bg-app1"].run("test -e /var/lib/opsbook/journal-deploy.lock").rc == 1
    finally:
        HOSTS["bg-lb1"].run(f"printf 'green\\n' > {STATE_FILE}")
    assert_active("green", "v2")


def test_a_state_file_that_contradicts_the_load_balancer_is_refused_before_any_change():
    """The state file on bg-lb1 says blue while its nginx sends traffic to green: refused, naming both."""
    assert HOSTS["bg-lb1"].run(f"printf 'blue\\n' > {STATE_FILE}").rc == 0
    try:
        before = snapshot()
        result, recap = playbook("blue_green.yml", "-e", "deploy_ref=v3")
        assert result.returncode == 2, result.stdout[-6000:]
        out = " ".join(result.stdout.split())
        assert (
            f"The live slot is unclear, so nothing was changed: {STATE_FILE} on bg-lb1 says blue, but {UPSTREAM}"
            " (nginx) on bg-lb1 sends traffic to green." in out
        ), out[-6000:]
        assert f"echo green > {STATE_FILE}" in out
        assert "PLAY [Prepare the release in the slot]" not in out
        assert recap and all(c == 0 for c in recap.values()), recap
        assert snapshot() == before
    finally:
        HOSTS["bg-lb1"].run(f"printf 'green\\n' > {STATE_FILE}")
    assert_active("green", "v2")


def stats(stdout: str) -> dict:
    """The set_stats block that ANSIBLE_SHOW_CUSTOM_STATS prints."""
    return json.loads(stdout.split("RUN:", 1)[1].strip().splitlines()[0])


def send_slow_task_when(marker: str, seconds: int, name: str, *extra: str) -> subprocess.CompletedProcess:
    """Run a playbook; when its output reaches marker, queue slow_task(seconds) through green's code."""
    proc = popen_playbook(name, *extra)
    lines, sent = [], False
    for line in proc.stdout:
        lines.append(line)
        if marker in line and not sent:
            sent = True
            out = HOSTS["bg-app1"].run(
                "systemd-run --pipe --wait --collect --quiet --uid=journal --gid=journal"
                " --property=EnvironmentFile=/srv/journal/shared/env --property=WorkingDirectory=/srv/journal/green"
                " /srv/journal/green/venv/bin/celery -A journal call articles.tasks.slow_task --args %s",
                json.dumps([seconds]),
            )
            assert out.rc == 0, out.stderr
            lines.append(f"[test] queued slow_task({seconds}): {out.stdout.strip()}\n")
    proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines))


def test_switch_back_to_blue_under_load_drops_no_request():
    # Green's workers are the only consumers until the switch play moves the workers: a task
    # queued when that play starts runs on them through the drain (2 s here) and is reported.
    (result, counts) = load_through(
        tuple(LBS),
        lambda: send_slow_task_when(
            "PLAY [Switch the load balancers]", 60, "blue_green_switch.yml", "-e", "blue_green_worker_drain_timeout=2"
        ),
    )
    assert result.returncode == 0, result.stdout[-6000:]
    no_failed_request(counts)
    assert_active("blue", "v1")
    still = stats(result.stdout)["blue_green_still_running"]
    tasks = [t for per_host in still.values() for per_worker in per_host for ts in per_worker.values() for t in ts]
    assert [(t["name"], t["args"]) for t in tasks] == [("articles.tasks.slow_task", [60])], still
    assert "WARNING: the old slot's workers on" in result.stdout


def test_switching_to_the_active_slot_changes_nothing():
    result, recap = playbook("blue_green_switch.yml", "-e", "blue_green_slot=blue")
    assert result.returncode == 0, result.stdout[-6000:]
    assert recap and all(c == 0 for c in recap.values()), recap


def test_v3_fails_its_health_gate_and_the_active_slot_keeps_serving():
    green_before = pointer("bg-app1", "green")
    result, _, counts = under_load("blue_green.yml", "-e", "deploy_ref=v3", "-e", "deploy_health_timeout=20")
    assert result.returncode == 2, result.stdout[-6000:]
    assert re.search(r"failed after the switch at step 'DEPLOY \| Health gate on this host'", result.stdout)
    no_failed_request(counts)
    for lb, c in counts.items():
        assert [v.rsplit("-", 1)[-1] for v in c["versions"]] == ["v1"], (lb, c)
    assert_active("blue", "v1")
    # green went back to the release it had, and still serves it for a switch-back
    assert pointer("bg-app1", "green") == green_before
    assert pointer("bg-app2", "green") == green_before


def test_retire_waits_for_the_soak_then_a_switch_to_the_stopped_slot_is_refused():
    result, _ = playbook("blue_green_retire.yml")
    assert result.returncode == 2 and "blue_green_soak_seconds (900)" in result.stdout, result.stdout[-4000:]
    assert active_units("bg-app1", "journal-green.service") == ["journal-green.service"]

    result, _ = playbook("blue_green_retire.yml", "-e", "blue_green_soak_seconds=0")
    assert result.returncode == 0, result.stdout[-4000:]
    for app in APPS:
        assert active_units(app, "journal-green.service", "journal-green.socket") == []

    result, recap = playbook("blue_green_switch.yml")
    assert result.returncode == 2
    assert "Refusing to switch to green: on bg-app" in result.stdout, result.stdout[-4000:]
    assert "web unit is inactive" in result.stdout
    assert all(c == 0 for c in recap.values()), recap
    assert_active("blue", "v1")


# Refused before any host is contacted, so tested in tests/unit/test_validate.py on the lab
# inventory with unreachable hosts: bad app_slots (no green, one port for both slots on the
# same hosts) in the validate play every playbook imports first (slots_without_green,
# slots_same_port), and the in-place playbooks deploy.yml and restore.yml refusing an app with
# slots in their roles' first checks (deploy_refuses_slots, restore_refuses_slots).


def test_health_checks_the_active_slot_and_not_the_retired_one(tmp_path):
    # Blue serves; green was retired by the test before: health.yml judges blue's units and
    # port on every host and passes with fail-on-critical.
    result, recap = playbook(
        "health.yml", "-e", f"maintenance_report_dir={tmp_path}", "-e", "maintenance_fail_on_critical=true"
    )
    assert result.returncode == 0, result.stdout[-6000:]
    assert recap and all(c == 0 for c in recap.values()), recap
    [path] = sorted(tmp_path.glob("health-*.json"))
    findings = json.loads(path.read_text())["findings"]
    services = {(f["host"], f["subject"]): f["level"] for f in findings if f["check"] == "service"}
    for app in APPS:
        for unit in ("journal-blue.socket", "journal-blue.service", "journal-blue-worker.service"):
            assert services[(app, unit)] == "ok", (app, unit, services)
    assert services[("bg-app1", "journal-blue-beat.service")] == "ok"
    assert not [unit for (_, unit) in services if "green" in unit], services
    assert all(level == "ok" for level in services.values()), services
    app_health = {(f["host"], f["subject"], f["level"]) for f in findings if f["check"] == "app health"}
    assert app_health == {(app, "http://127.0.0.1:8001/health/", "ok") for app in APPS}
    through = [(f["host"], f["level"]) for f in findings if f["check"] == "health through the load balancer"]
    assert sorted(through) == [("bg-lb1", "ok"), ("bg-lb2", "ok")]
    assert [f["subject"] for f in findings if f["check"] == "queue depth"] == ["celery"]


def test_the_host_group_topology_switches_between_hosts():
    """A second app (journal2) on the same containers, one slot per host: blue bg-app1, green bg-app2."""
    inventory = str(SCENARIO_DIR / "groups" / "hosts.yml")
    result, _ = playbook("provision.yml", inventory=inventory)
    assert result.returncode == 0, result.stdout[-6000:]
    # A first deploy that fails its gate leaves the slot serving nothing, and the lock free. v3
    # never passes and there is no release to go back to: 8 s of gate prove it as 20 did.
    result, _ = playbook("blue_green.yml", "-e", "deploy_ref=v3", "-e", "deploy_health_timeout=8", inventory=inventory)
    assert result.returncode == 2, result.stdout[-6000:]
    assert "failed after the switch at step 'DEPLOY | Health gate on this host'" in result.stdout
    assert pointer("bg-app1", "blue", "/srv/journal2") == ""
    assert active_units("bg-app1", "journal2-blue.service", "journal2-blue-worker.service") == []
    assert HOSTS["bg-app1"].run("test -e /var/lib/opsbook/journal2-deploy.lock").rc == 1
    result, _ = playbook("blue_green.yml", "-e", "deploy_ref=v1", inventory=inventory)
    assert result.returncode == 0, result.stdout[-6000:]
    assert HOSTS["bg-app2"].run("test -e /etc/systemd/system/journal2-blue.service").rc == 1
    assert HOSTS["bg-app1"].run("test -e /etc/systemd/system/journal2-green.service").rc == 1
    [v1] = served("bg-lb1", port=8080)
    assert v1.endswith("-v1") and v1 == pointer("bg-app1", "blue", "/srv/journal2")

    result, _, counts = under_load(
        "blue_green.yml", "-e", "deploy_ref=v2", port=8080, lbs=("bg-lb1",), inventory=inventory
    )
    assert result.returncode == 0, result.stdout[-6000:]
    no_failed_request(counts)
    [v2] = served("bg-lb1", port=8080)
    assert v2.endswith("-v2") and v2 == pointer("bg-app2", "green", "/srv/journal2")
    assert state("bg-lb1", "journal2") == "green" and fact("bg-lb1", "journal2")["active"] == "green"
    # workers and the one beat moved hosts with the slot
    assert active_units("bg-app2", "journal2-green-worker.service", "journal2-green-beat.service") == [
        "journal2-green-worker.service",
        "journal2-green-beat.service",
    ]
    assert active_units("bg-app1", "journal2-blue-worker.service", "journal2-blue-beat.service") == []
    assert active_units("bg-app1", "journal2-blue.service") == ["journal2-blue.service"]

    result, _, counts = under_load("blue_green_switch.yml", port=8080, lbs=("bg-lb1",), inventory=inventory)
    assert result.returncode == 0, result.stdout[-6000:]
    no_failed_request(counts)
    assert served("bg-lb1", port=8080) == {v1}
    # the scenario's own app was not touched
    assert_active("blue", "v1")
