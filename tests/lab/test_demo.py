"""The README's demo command, run as a new user would, then a re-run of the deploy.

Brings the lab up (unless it already runs), provisions it, deploys v1 and checks that lb1
serves it healthy; then the same deploy again changes nothing. Removes the lab afterwards
when this test brought it up.
"""

import json
import re
import subprocess
import urllib.request

import pytest
from lab_helpers import PORT, ansible_playbook, lab_exec

# The deploy lock's heartbeat task, run (not skipped) on the lock host.
HEARTBEAT_SENT = re.compile(r"TASK \[[^\]\n]*Heartbeat of the deploy lock on app1\][^\n]*\n(?:[^\n]*\n)?ok: \[")


@pytest.mark.lab
def test_demo_serves_the_app_healthy_through_lb1(demo_output):
    rc, text = demo_output
    assert rc == 0, text[-6000:]
    assert "HTTP 200" in text
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health/", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "ok"
    assert body["components"] == {"database": "ok", "redis": "ok", "celery": "ok"}
    assert body["version"].endswith("-v1")


@pytest.mark.lab
def test_demo_backs_up_verifies_and_drills_a_restore(demo_output):
    rc, text = demo_output
    assert rc == 0, text[-6000:]
    verified = r"verified at level content while pg_dump wrote it; \d+ tables, \d+ rows; release \S+-v1"
    assert re.search(verified, text), text[-3000:]
    assert "media (" in text and "config-db1 (" in text
    assert re.search(r"Drill: backup \S+ restored into a scratch database in [\d.]+ s", text), text[-3000:]
    assert "backed up, verified and drilled" in text


@pytest.mark.lab
def test_demo_runs_the_health_checks_and_points_to_the_report(demo_output):
    rc, text = demo_output
    assert rc == 0, text[-6000:]
    assert "health report: 0 critical," in text, text[-3000:]
    assert re.search(r"ok +app1 +service: journal-worker.service", text)
    assert re.search(r"ok +lb1 +health through the load balancer", text)
    assert re.search(r"page: \S+/health-\d{8}T\d{6}Z.html", text)


@pytest.mark.lab
def test_demo_switches_a_blue_green_app_under_load_and_back(demo_output):
    rc, text = demo_output
    assert rc == 0, text[-6000:]
    assert re.search(r"v1 deployed: lb1:8081 serves \S+-v1 from the blue slot", text), text[-3000:]
    assert re.search(r"switched under load: lb1:8081 serves \S+-v2 from the green slot", text)
    sent = re.search(r"requests during the switch: (\d+) sent, (\d+) failed", text)
    assert sent and int(sent.group(1)) > 100 and int(sent.group(2)) == 0, text[-3000:]
    assert re.search(r"switched back: lb1:8081 serves \S+-v1 from the blue slot", text)


@pytest.mark.lab
def test_both_app_hosts_serve_behind_lb1(demo_output):
    rc, text = demo_output
    assert rc == 0
    seen = set()
    for _ in range(8):
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/version/", timeout=10) as response:
            seen.add(json.load(response)["hostname"])
    assert seen == {"app1", "app2"}


def deploy(*extra: str) -> tuple[subprocess.CompletedProcess, dict[str, int]]:
    return ansible_playbook("deploy.yml", *extra)


def served_version() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/version/", timeout=10) as response:
        return json.load(response)["version"]


@pytest.mark.lab
def test_deploy_rerun_changes_nothing(demo_output):
    rc, _ = demo_output
    assert rc == 0
    result, recap = deploy()
    assert result.returncode == 0, result.stdout[-4000:]
    assert set(recap) == {"lb1", "app1", "app2", "db1"}
    assert all(changed == 0 for changed in recap.values()), recap
    # Nothing to deploy takes no lock, so no phase sends a heartbeat or warns that it is gone.
    assert not HEARTBEAT_SENT.search(result.stdout), result.stdout[-4000:]
    assert "no longer held" not in result.stdout


@pytest.mark.lab
def test_deploy_check_mode_reports_the_new_release_and_changes_nothing(demo_output):
    rc, _ = demo_output
    assert rc == 0
    before = served_version()
    result, recap = deploy("--check", "-e", "deploy_ref=v2")
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap["app1"] > 0 and recap["app2"] > 0, recap
    assert re.search(r"would install release \d{8}T\d{6}Z-v2 \(v2 at [0-9a-f]{12}\)", result.stdout)
    assert served_version() == before


@pytest.mark.lab
def test_deploy_of_an_unknown_ref_fails_before_any_change(demo_output):
    rc, _ = demo_output
    assert rc == 0
    before = served_version()
    result, recap = deploy("-e", "deploy_ref=no-such-tag")
    assert result.returncode != 0
    assert "deploy_ref 'no-such-tag' does not resolve to a commit" in result.stdout
    assert all(changed == 0 for changed in recap.values()), recap
    assert served_version() == before


@pytest.mark.lab
def test_deploy_preflight_refuses_little_disk_and_an_unreachable_database_before_any_change(demo_output):
    rc, _ = demo_output
    assert rc == 0
    before = served_version()
    releases = lab_exec("app1", "ls", "/srv/journal/releases").stdout.split()
    other = "v1" if before.endswith("-v2") else "v2"  # a ref to install, so the preflight runs
    result, recap = deploy(
        "-e", f"deploy_ref={other}", "-e", "deploy_min_free_mb=99999999", "-e", "app_db_port=5499",
        "-e", "deploy_preflight_timeout=1",
    )  # fmt: skip
    assert result.returncode != 0
    assert re.search(r"Preflight failed on app1 \(nothing was changed\): app1 has \d+ MiB free", result.stdout)
    assert "below deploy_min_free_mb (99999999)" in result.stdout
    assert "The database db1:5499 did not answer within 1 s (deploy_preflight_timeout)" in result.stdout
    assert "The broker" not in result.stdout
    assert all(changed == 0 for changed in recap.values()), recap
    assert lab_exec("app1", "ls", "/srv/journal/releases").stdout.split() == releases
    assert lab_exec("app1", "test", "-e", "/var/lib/opsbook/journal-deploy.lock", check=False).returncode != 0
    assert served_version() == before


@pytest.mark.lab
def test_deploy_failing_the_gate_through_lb1_rolls_every_host_back(demo_output):
    # Every host passes its own gate; the gate through lb1 asks a port nothing listens on.
    rc, _ = demo_output
    assert rc == 0
    before = served_version()
    other = "v1" if before.endswith("-v2") else "v2"
    result, _ = deploy("-e", f"deploy_ref={other}", "-e", "deploy_lb_port=9", "-e", "deploy_health_timeout=3")
    assert result.returncode != 0
    assert re.search(
        r"failed after the switch at step 'DEPLOY \| Health gate through the load balancer' on app1: "
        r"lb1 did not serve \S+-" + other + r" healthy within 3 s \(deploy_health_timeout\); "
        r"the last answers: no answer",
        result.stdout,
    ), result.stdout[-4000:]
    assert served_version() == before
    for host in ("app1", "app2"):
        assert lab_exec(host, "readlink", "/srv/journal/current").stdout.strip() == f"releases/{before}"
        newest = lab_exec(host, "sh", "-c", f"ls -d /srv/journal/releases/*-{other} | tail -n 1").stdout.strip()
        assert lab_exec(host, "test", "-e", f"{newest}/FAILED", check=False).returncode == 0, newest
    assert lab_exec("app1", "test", "-e", "/var/lib/opsbook/journal-deploy.lock", check=False).returncode != 0


@pytest.mark.lab
def test_a_host_behind_the_others_gets_the_ref_and_the_gate_accepts_the_others_release(demo_output):
    # Scale-out: app1 already runs the ref under its release; app2 serves another revision (its
    # REVISION says so). app2 alone gets a new release of the ref; the gate through lb1 then sees
    # both release names of one revision and must pass (it waited for the new name only).
    rc, _ = demo_output
    assert rc == 0
    before = served_version()
    ref = before.split("-", 1)[1]
    revision_file = f"/srv/journal/releases/{before}/REVISION"
    revision = lab_exec("app2", "cat", revision_file).stdout
    lab_exec("app2", "sh", "-c", f"echo 000000000000 > {revision_file}")
    try:
        # A 10 s stale limit: the heartbeat goes out at every phase once a second (a tenth of it)
        # has passed since the run began, so this deploy's later phases send it, and it still
        # holds the lock.
        result, recap = deploy("-e", f"deploy_ref={ref}", "-e", "deploy_lock_stale_after=10")
    finally:
        lab_exec("app2", "sh", "-c", f"printf %s '{revision.strip()}' > {revision_file}")
    assert result.returncode == 0, result.stdout[-4000:]
    assert HEARTBEAT_SENT.search(result.stdout), result.stdout[-4000:]
    assert "no longer held" not in result.stdout
    assert lab_exec("app1", "readlink", "/srv/journal/current").stdout.strip() == f"releases/{before}"
    now = lab_exec("app2", "readlink", "/srv/journal/current").stdout.strip()
    assert now.startswith("releases/") and now.endswith(f"-{ref}") and now != f"releases/{before}", now
    # Both hosts on one release again for the tests after this one.
    back, _ = ansible_playbook("rollback.yml", "-e", f"rollback_release={before}")
    assert back.returncode == 0, back.stdout[-4000:]
    assert lab_exec("app2", "readlink", "/srv/journal/current").stdout.strip() == f"releases/{before}"
