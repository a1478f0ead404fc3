"""The zero-downtime deploy and rollback (issue #4), after converge (provision) and tests/test_1_provision.py.

The module's first step deploys v1 (the first deploy on provisioned hosts); the rest build on it.

Hosts: md-lb1 (HAProxy) and md-lb2 (nginx), both in front of md-app1 (web, worker, beat) and
md-app2 (web, worker); md-db1 (PostgreSQL, Redis). Each deploy under load sends constant
requests through both load balancers, so both ways of taking a host out (HAProxy's runtime
API, nginx's `down` + graceful reload) are proven while requests flow. The tests build on
each other (v2, v3, v4, rollback to v1), so they run in file order.

Issue #19 adds: a preflight refusal on one host (nothing changes anywhere), the pre-deploy
backup taken before the migration, a deploy killed (SIGKILL) before a switched host went
back into the load balancers and one killed during the install, each finished by the next
run, a rollback that fails its gate and puts every host back, a one-host rollback refusal,
the documented rollback variables, and a failed first deploy (last: it leaves no release live).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(PROJECT_DIR / "tests" / "molecule"), str(PROJECT_DIR / "tests" / "lab")]

import pytest  # noqa: E402
from molecule_scenario import (  # noqa: E402
    ENV,
    INVENTORY,
    SCENARIO_DIR,
    host,
    no_failed_request,
    playbook,
    popen_playbook,
    under_load,
)

LBS = ("md-lb1", "md-lb2")
APP_HOSTS = ("md-app1", "md-app2")
HOSTS = {name: host(name) for name in (*LBS, *APP_HOSTS, "md-db1")}
LOCK = "/var/lib/opsbook/journal-deploy.lock"
HOOK_FILE = "/tmp/opsbook-hook-after-switch"  # noqa: S108 (on the app hosts; hooks/after_switch.yml writes it)
PROGRESS = "/var/lib/opsbook/journal-current.progress"  # activate.yml's note while a host is mid-walk
BACKUPS = "/var/backups/opsbook/journal"


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


def in_lb(name: str) -> dict[str, bool]:
    """Whether each load balancer sends requests to app host name (HAProxy: not in maintenance; nginx: not `down`)."""
    haproxy = HOSTS["md-lb1"].run(
        "python3 -c %s",
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock');"
        " s.sendall(b'show servers state journal_app\\n'); print(s.makefile().read())",
    )
    assert haproxy.rc == 0, haproxy.stderr
    # Columns: be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...
    admin = {
        f[3]: int(f[6]) for f in (line.split() for line in haproxy.stdout.splitlines()) if len(f) > 6 and f[0].isdigit()
    }
    nginx = HOSTS["md-lb2"].file("/etc/nginx/opsbook/journal-upstream.conf").content_string
    down = re.search(rf"^\s*server\s+{re.escape(name)}:\d+[^;]*\sdown;", nginx, re.MULTILINE)
    return {"md-lb1": admin[name] & 0x1F == 0, "md-lb2": down is None}


def all_in_lb() -> dict[str, dict[str, bool]]:
    return {name: in_lb(name) for name in APP_HOSTS}


EVERY_HOST_IN = {name: {"md-lb1": True, "md-lb2": True} for name in APP_HOSTS}


def killed_at(task: str, *extra: str, after: float = 0.0) -> None:
    """ansible-playbook deploy.yml killed (SIGKILL, with every process it started) once its output reaches task.

    As when the controller dies: the playbook, its workers and the `docker exec` clients they run all go.
    """
    proc = subprocess.Popen(
        ["ansible-playbook", "-i", INVENTORY, str(Path(PROJECT_DIR) / "playbooks" / "deploy.yml"), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=SCENARIO_DIR,
        env={**ENV, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
    )  # fmt: skip
    seen = []
    deadline = time.monotonic() + 600
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("TASK [") and f"{task}]" in line:  # "TASK [<role> : <task>] ***"
                time.sleep(after)
                break
            assert time.monotonic() < deadline, "".join(seen)[-4000:]
        else:
            raise AssertionError(f"the run ended before {task!r}:\n" + "".join(seen)[-4000:])
    finally:
        # The playbook and its descendants (its forked workers are session leaders of their own).
        parents = {}
        for entry in os.listdir("/proc"):
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat[stat.rfind(")") + 2 :].split()[1])
            except (ValueError, OSError, IndexError):
                continue
        doomed, grew = {proc.pid}, True
        while grew:
            more = {pid for pid, parent in parents.items() if parent in doomed} - doomed
            doomed |= more
            grew = bool(more)
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=60)


def backup_migrations(backup_id: str) -> str:
    """The django_migrations rows in a backup's dump (pg_restore reads the archive itself)."""
    dump = f"{BACKUPS}/journal-{backup_id}.dump"
    out = HOSTS["md-db1"].run(f"runuser -u postgres -- pg_restore --data-only --table=django_migrations -f - {dump}")
    assert out.rc == 0, out.stderr
    return out.stdout


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


# --------------------------------------------------------------------------- RQ (issue 20, item 2)
# group_vars/all/rq.yml: RQ workers `rq` (two) and `rq-low` on md-app1 and md-app2, the RQ
# scheduler on md-app1; every one of them takes the default queue.
RQ_WORKERS = ["journal-rq-1.service", "journal-rq-2.service", "journal-rq-low.service"]
RQ_UNITS = {"md-app1": [*RQ_WORKERS, "journal-rq-scheduler.service"], "md-app2": RQ_WORKERS}
RQ_JOBS_FILE = "/tmp/opsbook-hook-rq-jobs"  # noqa: S108 (on the app hosts; hooks/after_switch.yml writes it)
RQ_PROBE = """
import datetime, json, os, sys, time
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry
redis = Redis.from_url(os.environ["RQ_REDIS_URL"])
what = sys.argv[1]
if what == "workers":
    out = {w.name: {"state": w.get_state(), "queues": w.queue_names()} for w in Worker.all(connection=redis)}
elif what == "scheduled":  # a job enqueued for 1 s from now, run once the scheduler moved it
    job = Queue("default", connection=redis).enqueue_in(datetime.timedelta(seconds=1), "journal.rqjobs.sleep", 0)
    deadline = time.monotonic() + 30
    while job.get_status(refresh=True) != "finished" and time.monotonic() < deadline:
        time.sleep(0.5)
    out = {"status": job.get_status(), "worker": job.worker_name}
else:  # jobs: their state, and the failed registry
    out = {"failed": FailedJobRegistry("default", connection=redis).get_job_ids(), "jobs": {}}
    for job in Job.fetch_many(sys.argv[2:], connection=redis):
        out["jobs"][job.id if job else "?"] = job and {
            "status": job.get_status(), "worker": job.worker_name, "result": job.return_value(),
            "started": job.started_at.timestamp() if job.started_at else None,
            "ended": job.ended_at.timestamp() if job.ended_at else None,
        }
print(json.dumps(out, default=str))
"""


def rq_probe(*args: str) -> dict:
    """RQ_PROBE run on md-app1 with the live release's Python and the app's RQ_REDIS_URL (not in argv)."""
    command = 'set -a; . /srv/journal/shared/env; set +a; exec /srv/journal/current/venv/bin/python -c "$0" "$@"'
    out = HOSTS["md-app1"].run("sh -ec %s %s " + " ".join(["%s"] * len(args)), command, RQ_PROBE, *args)
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def unit_started(name: str, unit: str) -> float:
    """When unit's running process started (unix time, microseconds)."""
    out = HOSTS[name].run("systemctl show -P ActiveEnterTimestamp --timestamp=us+utc %s", unit).stdout.strip()
    return datetime.datetime.strptime(out, "%a %Y-%m-%d %H:%M:%S.%f %Z").replace(tzinfo=datetime.UTC).timestamp()


@pytest.fixture(scope="module", autouse=True)
def first_deploy():
    """v1, the first deploy on the provisioned hosts (no release, no env file: test_1_provision.py left none)."""
    assert not HOSTS["md-app1"].file("/srv/journal/current").exists
    result, recap = deploy("v1")
    assert result.returncode == 0, result.stdout[-6000:]
    assert recap["md-app1"] > 0 and recap["md-app2"] > 0, recap


def test_v1_runs_the_rq_workers_and_the_scheduler():
    """The RQ units run from the release, registered in Redis under <name>@<host>, the scheduler runs jobs."""
    for name, units in RQ_UNITS.items():
        for unit in units:
            service = HOSTS[name].service(unit)
            assert service.is_enabled and service.is_running, (name, unit)
    workers = rq_probe("workers")
    expected = {
        f"{unit.removeprefix('journal-').removesuffix('.service')}@{name}"
        for name, units in RQ_UNITS.items()
        for unit in units
    }
    assert expected <= workers.keys(), workers
    assert workers["rq-1@md-app2"]["queues"] == ["default", "emails"], workers
    assert workers["rq-low@md-app2"]["queues"] == ["low", "default"], workers
    assert workers["rq-scheduler@md-app1"]["queues"] == ["default", "emails", "low"], workers
    assert rq_probe("scheduled")["status"] == "finished"


def test_v1_deployed_behind_both_load_balancers():
    release = host_release("md-app1")
    assert release.endswith("-v1") and host_release("md-app2") == release
    assert served_everywhere() == {release}
    for name in APP_HOSTS:
        assert fact(name)["release"] == release
        assert last_log(name)["result"] == "success"
    assert not lock_held()


def test_v1_linked_the_configuration_file_into_the_release_without_printing_it():
    """app_config_files (group_vars/all/appdesc.yml): shared/config/opsbook-appdesc.ini, 0640, the app
    user's, holding the vault's secret key, and the live release's link to it on both app hosts."""
    for name in APP_HOSTS:
        shared = HOSTS[name].file("/srv/journal/shared/config/opsbook-appdesc.ini")
        assert (shared.mode, shared.user, shared.group) == (0o640, "journal", "journal"), name
        assert "secret_key = " in shared.content_string and "database_host = md-db1" in shared.content_string
        link = HOSTS[name].file(f"/srv/journal/releases/{host_release(name)}/opsbook-appdesc.ini")
        assert link.is_symlink and link.linked_to == "/srv/journal/shared/config/opsbook-appdesc.ini", name
        python = HOSTS[name].file(f"/srv/journal/releases/{host_release(name)}/venv/bin/python")
        assert python.linked_to.startswith("/usr/bin/python3.11"), name


def test_check_mode_reports_the_release_and_changes_nothing():
    before = {h: releases(h) for h in APP_HOSTS}
    live = {h: host_release(h) for h in APP_HOSTS}
    result, recap = deploy("v2", "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "would install release" in result.stdout
    assert "lab-django-secret-key" not in result.stdout  # the configuration file's secret, never printed
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


def test_preflight_refused_on_one_host_leaves_every_host_untouched(tmp_path):
    """Issue #19, item 8: md-app2 alone refuses (not enough free space); md-app1 must not go ahead alone."""
    refusing = tmp_path / "refusing.yml"
    refusing.write_text("all:\n  hosts:\n    md-app2:\n      deploy_min_free_mb: 100000000\n")
    before = {h: releases(h) for h in APP_HOSTS}
    logs = {h: last_log(h) for h in APP_HOSTS}
    result, _ = deploy("v2", "-i", str(refusing))
    assert result.returncode != 0
    assert "Preflight failed on md-app2" in result.stdout, result.stdout[-4000:]
    assert "deploy_min_free_mb" in result.stdout
    assert {h: releases(h) for h in APP_HOSTS} == before
    assert {h: last_log(h) for h in APP_HOSTS} == logs
    assert applied("articles.0002_article_summary") == 0
    assert served_everywhere() == {host_release("md-app1")}
    assert all_in_lb() == EVERY_HOST_IN
    assert not lock_held()


def test_v2_migrates_once_and_rolls_out_without_a_failed_request():
    hooks = json.dumps({"deploy_hooks": {"after_switch": str(SCENARIO_DIR / "hooks" / "after_switch.yml")}})
    v1 = host_release("md-app1")
    (result, _), counts = under_load(LBS, lambda: deploy("v2", "-e", hooks, "-e", "deploy_backup_before=true"))
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
    # Issue #19, item 1: the pre-deploy backup was taken before the migration, under the lock:
    # its dump has v1's migration state and its manifest names v1, the release it can go back to.
    backup_id = f"{release}-predeploy"
    manifest = json.loads(HOSTS["md-db1"].file(f"{BACKUPS}/journal-{backup_id}.json").content_string)
    assert manifest["release"] == v1, manifest
    rows = backup_migrations(backup_id)
    assert "0001_initial" in rows and "0002_article_summary" not in rows, rows
    # One host at a time out of each load balancer and back in: HAProxy through its runtime
    # API, nginx by marking the upstream server down (then up) and reloading.
    for task, lb in (("DEPLOY | Set the HAProxy server state", "md-lb1"),
                     ("DEPLOY | Mark the nginx upstream server of this host", "md-lb2")):  # fmt: skip
        assert sorted(delegated_changes(result.stdout, task, lb)) == ["md-app1"] * 2 + ["md-app2"] * 2, task
    assert not lock_held()


def test_v2_restarted_each_rq_worker_only_after_its_running_job_finished():
    """The hook kept every RQ worker busy (8 s jobs) when its host restarted: each job finished
    with its result before its worker's new process started, and no job failed."""
    ids = HOSTS["md-app1"].file(RQ_JOBS_FILE).content_string.split()
    ids += HOSTS["md-app2"].file(RQ_JOBS_FILE).content_string.split()
    assert len(ids) >= 14, ids  # 7 RQ workers: each host's hook enqueued one job per worker
    seen = rq_probe("jobs", *ids)
    assert seen["failed"] == [], seen
    restarted = 0
    for job_id, job in seen["jobs"].items():
        assert job and job["status"] == "finished" and job["result"]["seconds"] == 8.0, (job_id, job)
        worker, _, name = job["worker"].partition("@")
        started = unit_started(name, f"journal-{worker}.service")
        if job["started"] < started:  # ran on the worker's process before this one
            assert job["ended"] <= started + 0.5, (job_id, job, started)
            # The restart waited for it: the new process started right after the job ended.
            restarted += started - job["ended"] < 5
    # Each host's hook waited until its own workers were busy: all 7 were restarted mid-job.
    assert restarted >= 7, seen


def test_rerun_changes_nothing():
    result, recap = deploy("v2")
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap and all(changed == 0 for changed in recap.values()), recap


def test_deploy_killed_before_a_host_is_back_in_the_load_balancers_is_finished_by_a_rerun():
    """Issue #19, item 9: the controller dies after md-app1 switched, restarted and passed its gate."""
    v2 = host_release("md-app1")
    killed_at("DEPLOY | Put the host back into the load balancer", "-e", "deploy_ref=v1")
    # Where it was cut: md-app1 on the new release, out of both load balancers, the lock held.
    assert host_release("md-app1").endswith("-v1") and host_release("md-app2") == v2
    assert in_lb("md-app1") == {"md-lb1": False, "md-lb2": False}
    assert lock_held()
    result, _ = deploy("v1")
    assert result.returncode == 0, result.stdout[-6000:]
    assert "An interrupted run left md-app1 unfinished" in result.stdout
    release = host_release("md-app1")
    assert release.endswith("-v1") and host_release("md-app2") == release
    assert all_in_lb() == EVERY_HOST_IN
    assert served_everywhere() == {release}
    for name in APP_HOSTS:
        assert not HOSTS[name].file(PROGRESS).exists
        assert fact(name)["previous"] == v2  # md-app1 too: what it served before the run that was cut short
    assert not lock_held()


def test_deploy_killed_during_the_install_leaves_the_lock_and_a_half_made_release():
    """Issue #19, item 9: the controller dies while the hosts install v3; the next test's deploy is the re-run."""
    live = host_release("md-app1")
    killed_at("DEPLOY | Create the release with its virtualenv and requirements", "-e", "deploy_ref=v3", after=3)
    assert lock_held()
    assert {host_release(h) for h in APP_HOSTS} == {live}
    assert all_in_lb() == EVERY_HOST_IN


def test_v3_health_failure_rolls_back_to_v1_without_a_failed_request():
    """Also the re-run of the v3 deploy killed during its install (the test before): it takes over the lock."""
    live = host_release("md-app1")
    assert live.endswith("-v1")  # the re-run of the killed v1 deploy
    (result, _), counts = under_load(LBS, lambda: deploy("v3", "-e", "deploy_health_timeout=20"))
    assert result.returncode != 0
    for name in APP_HOSTS:  # the release the killed run was making is gone (or was finished by its orphan command)
        assert HOSTS[name].run("ls /srv/journal/releases/*/.installing").rc != 0
    assert "failed after the switch at step 'DEPLOY | Health gate on this host'" in result.stdout
    assert "Every switched host was rolled back" in result.stdout
    no_failed_request(counts, at_least=500)
    assert {host_release(h) for h in APP_HOSTS} == {live}
    assert served_everywhere() == {live}
    v3 = [r for r in releases("md-app1") if r.endswith("-v3")][-1]
    assert HOSTS["md-app1"].file(f"/srv/journal/releases/{v3}/FAILED").is_file
    assert last_log("md-app1")["result"] == "rolled_back"
    assert fact("md-app1")["release"] == live
    assert '"deploy_result": "rolled_back"' in result.stdout
    assert not lock_held()


def test_rollback_failing_its_health_gate_puts_every_host_back():
    """Issue #19, item 8: rollback.yml has the deploy's recovery; to the failed v3 by name, md-app1 fails its gate."""
    live = host_release("md-app1")
    v3 = [r for r in releases("md-app1") if r.endswith("-v3")][-1]
    result, _ = playbook("rollback.yml", "-e", f"rollback_release={v3}", "-e", "deploy_health_timeout=15")
    assert result.returncode != 0
    assert f"Rollback to {v3} failed at step 'DEPLOY | Health gate on this host' on md-app1" in result.stdout, (
        result.stdout[-4000:]
    )
    assert "Every switched host was put back" in result.stdout
    assert {host_release(h) for h in APP_HOSTS} == {live}
    assert all_in_lb() == EVERY_HOST_IN
    assert served_everywhere() == {live}
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
    # Issue #19, item 8: a release that only md-app1 has is refused on md-app2, and md-app1 stays as it was.
    logs = {h: last_log(h) for h in APP_HOSTS}
    HOSTS["md-app1"].run_expect([0], f"install -d /srv/journal/releases/{unfinished}/venv")
    try:
        result, _ = playbook("rollback.yml", "-e", f"rollback_release={unfinished}")
    finally:
        HOSTS["md-app1"].run_expect([0], f"rm -r /srv/journal/releases/{unfinished}")
    assert result.returncode != 0
    assert "Nothing to roll back to on md-app2" in result.stdout, result.stdout[-4000:]
    assert {h: last_log(h) for h in APP_HOSTS} == logs
    assert all_in_lb() == EVERY_HOST_IN
    # Issue #19, item 13: the documented names (docs/deploy.md) are the ones read.
    result, _ = playbook("rollback.yml", "-e", "rollback_restore_db=true")
    assert result.returncode != 0
    assert "set rollback_confirm=journal" in result.stdout
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


def test_failed_first_deploy_releases_its_lock_and_marks_the_release_failed():
    """Issue #19, item 10 (the role's part): a first deploy (nothing served before) failing after its switch.

    Last in the file: the hosts serve nothing afterwards. The pointers go, as on new hosts; v3 fails
    md-app1's health gate; with nothing to go back to, md-app1 stays on v3, marked FAILED, the deploy
    is recorded and the lock released.
    """
    for name in APP_HOSTS:
        HOSTS[name].run_expect([0], "rm /srv/journal/current")
    result, _ = deploy("v3", "-e", "deploy_health_timeout=15")
    assert result.returncode != 0
    assert "failed after the switch at step 'DEPLOY | Health gate on this host' on md-app1" in result.stdout, (
        result.stdout[-4000:]
    )
    assert "had no release before" in result.stdout
    assert "left on it: md-app1" in result.stdout
    v3 = host_release("md-app1")
    assert v3.endswith("-v3")
    assert HOSTS["md-app1"].file(f"/srv/journal/releases/{v3}/FAILED").is_file
    assert last_log("md-app1")["result"] == "rolled_back" and last_log("md-app1")["release"] == v3
    assert not HOSTS["md-app2"].file("/srv/journal/current").exists  # its batch never started
    assert not lock_held()
