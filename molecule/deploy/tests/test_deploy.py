"""The zero-downtime deploy and rollback (issue #4), after converge (provision, v1) and idempotence.

Hosts: md-lb1 (HAProxy) and md-lb2 (nginx), both in front of md-app1 (web, worker, beat) and
md-app2 (web, worker); md-db1 (PostgreSQL, Redis). Each deploy under load sends constant
requests through both load balancers, so both ways of taking a host out (HAProxy's runtime
API, nginx's `down` + graceful reload) are proven while requests flow. The tests build on
each other (v2, v3, v4, rollback to v1), so they run in file order.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(PROJECT_DIR / "tests" / "molecule"), str(PROJECT_DIR / "tests" / "lab")]

from molecule_scenario import SCENARIO_DIR, host, no_failed_request, playbook, popen_playbook, under_load  # noqa: E402

LBS = ("md-lb1", "md-lb2")
APP_HOSTS = ("md-app1", "md-app2")
HOSTS = {name: host(name) for name in (*LBS, *APP_HOSTS, "md-db1")}
LOCK = "/var/lib/opsbook/journal-deploy.lock"
HOOK_FILE = "/tmp/opsbook-hook-after-switch"  # noqa: S108 (on the app hosts; hooks/after_switch.yml writes it)


def deploy(ref: str, *extra: str):
    return playbook("deploy.yml", "-e", f"deploy_ref={ref}", *extra)


def served(lb: str, n: int = 6) -> set[str]:
    """The releases lb answers with, over n requests (round robin over the app hosts)."""
    versions = set()
    for _ in range(n):
        out = HOSTS[lb].run("curl -s --max-time 10 http://127.0.0.1/version/")
        versions.add(json.loads(out.stdout or "{}").get("version", "?"))
    return versions


def served_everywhere() -> set[str]:
    return served(LBS[0]) | served(LBS[1])


def host_release(name: str) -> str:
    return HOSTS[name].run("readlink /srv/journal/current").stdout.strip().removeprefix("releases/")


def releases(name: str) -> list[str]:
    return sorted(HOSTS[name].run("ls /srv/journal/releases").stdout.split())


def last_log(name: str) -> dict:
    return json.loads(HOSTS[name].run("tail -n 1 /var/log/opsbook/journal-deploy.jsonl").stdout)


def fact(name: str) -> dict:
    return json.loads(HOSTS[name].file("/etc/ansible/facts.d/opsbook_deploy.fact").content_string)["journal"]["current"]


def lock_held() -> bool:
    return HOSTS["md-app1"].run(f"test -d {LOCK}").rc == 0


def task_hosts(stdout: str, task: str) -> list[str]:
    """Hosts that reported changed/ok for a task in the playbook output."""
    block = stdout.split(f"{task}]")[1].split("TASK [")[0] if f"{task}]" in stdout else ""
    return re.findall(r"^(?:changed|ok): \[([\w-]+)\]", block, re.MULTILINE)


def delegated_changes(stdout: str, task: str, lb: str) -> list[str]:
    """For every run of a task, the app hosts it changed through lb ("changed: [md-app1 -> md-lb1]")."""
    blocks = [b.split("TASK [")[0] for b in stdout.split(f"{task}]")[1:]]
    return [h for b in blocks for h in re.findall(rf"^changed: \[([\w-]+) -> {lb}\]", b, re.MULTILINE)]


def applied(migration: str) -> int:
    sql = f"SELECT count(*) FROM django_migrations WHERE app || '.' || name = '{migration}'"  # noqa: S608 (a test constant)
    out = HOSTS["md-db1"].run("runuser -u postgres -- psql -XAtd journal -c %s", sql)
    assert out.rc == 0, out.stderr
    return int(out.stdout.strip())


def test_converge_deployed_v1_behind_both_load_balancers():
    release = host_release("md-app1")
    assert release.endswith("-v1") and host_release("md-app2") == release
    assert served_everywhere() == {release}
    for name in APP_HOSTS:
        assert fact(name)["release"] == release
        assert last_log(name)["result"] == "success"
    assert not lock_held()


def test_check_mode_reports_the_release_and_changes_nothing():
    before = {h: releases(h) for h in APP_HOSTS}
    live = {h: host_release(h) for h in APP_HOSTS}
    result, recap = deploy("v2", "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "would install release" in result.stdout
    assert recap["md-app1"] > 0 and recap["md-app2"] > 0
    assert {h: releases(h) for h in APP_HOSTS} == before
    assert {h: host_release(h) for h in APP_HOSTS} == live
    assert not lock_held()


def test_nonexistent_ref_fails_before_any_change():
    before = {h: releases(h) for h in APP_HOSTS}
    result, recap = deploy("no-such-ref")
    assert result.returncode != 0
    assert "deploy_ref 'no-such-ref' does not resolve to a commit" in result.stdout
    assert "Nothing was changed" in result.stdout
    assert all(changed == 0 for changed in recap.values()), recap
    assert {h: releases(h) for h in APP_HOSTS} == before
    assert not lock_held()


def test_v2_migrates_once_and_rolls_out_without_a_failed_request():
    hooks = json.dumps({"deploy_hooks": {"after_switch": str(SCENARIO_DIR / "hooks" / "after_switch.yml")}})
    (result, _), counts = under_load(LBS, lambda: deploy("v2", "-e", hooks))
    assert result.returncode == 0, result.stdout[-6000:]
    no_failed_request(counts, at_least=1000)
    for lb, c in counts.items():  # the rollout happened while the load ran: both releases answered
        assert sorted(v.rsplit("-", 1)[-1] for v in c["versions"]) == ["v1", "v2"], (lb, c)
    # Once, on one host: the task ran on md-app1 only, and PostgreSQL has one row for it.
    assert task_hosts(result.stdout, "DEPLOY | manage.py migrate --noinput") == ["md-app1"]
    assert "1 pending migration(s): articles.0002_article_summary" in result.stdout
    assert applied("articles.0002_article_summary") == 1
    release = host_release("md-app1")
    assert release.endswith("-v2") and host_release("md-app2") == release
    assert served_everywhere() == {release}
    for name in APP_HOSTS:
        assert fact(name)["release"] == release
        assert fact(name)["previous"].endswith("-v1")
        assert last_log(name)["result"] == "success"
        # The hook ran between the switch and the restart: the pointer named v2, the host served v1.
        assert HOSTS[name].file(HOOK_FILE).content_string.split() == [
            name,
            release,
            f"releases/{release}",
            fact(name)["previous"],
        ]
    assert '"deploy_result": "success"' in result.stdout
    # One host at a time out of each load balancer and back in: HAProxy through its runtime
    # API, nginx by marking the upstream server down (then up) and reloading.
    for task, lb in (("DEPLOY | Set the HAProxy server state", "md-lb1"),
                     ("DEPLOY | Mark the nginx upstream server of this host", "md-lb2")):  # fmt: skip
        assert sorted(delegated_changes(result.stdout, task, lb)) == ["md-app1"] * 2 + ["md-app2"] * 2, task
    assert not lock_held()


def test_rerun_changes_nothing():
    result, recap = deploy("v2")
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap and all(changed == 0 for changed in recap.values()), recap


def test_v3_health_failure_rolls_back_to_v2_without_a_failed_request():
    v2 = host_release("md-app1")
    assert v2.endswith("-v2")
    (result, _), counts = under_load(LBS, lambda: deploy("v3", "-e", "deploy_health_timeout=20"))
    assert result.returncode != 0
    assert "failed after the switch at step 'DEPLOY | Health gate on this host'" in result.stdout
    assert "Every switched host was rolled back" in result.stdout
    no_failed_request(counts, at_least=500)
    assert {host_release(h) for h in APP_HOSTS} == {v2}
    assert served_everywhere() == {v2}
    v3 = [r for r in releases("md-app1") if r.endswith("-v3")][-1]
    assert HOSTS["md-app1"].file(f"/srv/journal/releases/{v3}/FAILED").is_file
    assert last_log("md-app1")["result"] == "rolled_back"
    assert fact("md-app1")["release"] == v2
    assert '"deploy_result": "rolled_back"' in result.stdout
    assert not lock_held()


def test_v4_migration_failure_switches_nothing_and_leaves_no_release():
    live = {h: host_release(h) for h in APP_HOSTS}
    result, _ = deploy("v4")
    assert result.returncode != 0
    assert "failed before the switch at step 'DEPLOY | manage.py migrate --noinput'" in result.stdout
    assert "migration articles.0003_article_word_count fails on purpose" in result.stdout
    assert {h: host_release(h) for h in APP_HOSTS} == live
    assert all(not r.endswith("-v4") for h in APP_HOSTS for r in releases(h))
    assert applied("articles.0003_article_word_count") == 0
    assert last_log("md-app1")["result"] == "failed"
    assert not lock_held()


def test_rollback_refuses_a_missing_release_and_an_unconfirmed_restore():
    live = {h: host_release(h) for h in APP_HOSTS}
    result, _ = playbook("rollback.yml", "-e", "rollback_release=no-such-release")
    assert result.returncode != 0
    assert "Nothing to roll back to" in result.stdout
    # A release directory without its virtualenv (an install cut short) is not one to go back to.
    unfinished = "20261130T000000Z-unfinished"
    for name in APP_HOSTS:
        HOSTS[name].run_expect([0], f"install -d /srv/journal/releases/{unfinished}/app")
    try:
        result, _ = playbook("rollback.yml", "-e", f"rollback_release={unfinished}")
    finally:
        for name in APP_HOSTS:
            HOSTS[name].run_expect([0], f"rm -r /srv/journal/releases/{unfinished}")
    assert result.returncode != 0
    assert f"release {unfinished} (deploy_target_release / rollback_release) is not a complete release" in result.stdout
    result, _ = playbook("rollback.yml", "-e", "rollback_restore_database=true")
    assert result.returncode != 0
    assert "set rollback_restore_confirm=journal" in result.stdout
    assert {h: host_release(h) for h in APP_HOSTS} == live
    assert not lock_held()


def test_rollback_to_v1_while_a_concurrent_deploy_is_refused_by_the_lock():
    rollback = popen_playbook("rollback.yml")
    try:
        deadline = time.monotonic() + 300
        while not lock_held():
            assert rollback.poll() is None, rollback.stdout.read()[-4000:]
            assert time.monotonic() < deadline, "rollback.yml never took the lock"
            time.sleep(0.5)
        result, _ = deploy("v3", "-e", "deploy_lock_timeout=2")
    finally:
        output, _ = rollback.communicate(timeout=600)
    assert result.returncode != 0
    assert f"Another run holds the lock {LOCK}" in result.stdout
    holder = re.compile(r"holds the lock \S+: \S+@\S+ since \S+ \(release \S+-v1, rollback\)")
    assert holder.search(result.stdout), result.stdout[-3000:]
    assert rollback.returncode == 0, output[-6000:]
    release = host_release("md-app1")
    assert release.endswith("-v1") and host_release("md-app2") == release
    assert served_everywhere() == {release}
    assert last_log("md-app1")["action"] == "rollback"
    assert not lock_held()
