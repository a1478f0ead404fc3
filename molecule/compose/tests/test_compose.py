"""app_runtime compose (issue 20 item 1): deploy, zero-downtime rollout, automatic and asked-for rollback.

Hosts: mc-lb1 (nginx) in front of mc-app1 (web, worker, beat) and mc-app2 (web, worker), each
running the sample app as the containers of the compose project `journal` in its own Docker
engine; mc-db1 (PostgreSQL as the project's service db in its own engine, Redis). The image of
each release is built on the controller from the release's Dockerfile, pushed to the lab's registry
on mc-lb1 (app_image) and pulled by the hosts.
The tests build on each other (v1, v2, a re-run, v3 rolled back, rollback to v1), so they run in
file order.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(PROJECT_DIR / "tests" / "molecule"), str(PROJECT_DIR / "tests" / "lab")]

from molecule_scenario import SCENARIO_DIR, host, no_failed_request, playbook, under_load  # noqa: E402

LBS = ("mc-lb1",)
APP_HOSTS = ("mc-app1", "mc-app2")
HOSTS = {name: host(name) for name in (*LBS, *APP_HOSTS, "mc-db1")}
SERVICES = {"mc-app1": ["beat", "rq", "web", "worker"], "mc-app2": ["rq", "web", "worker"]}
# app_image (group_vars/all/zz-compose.yml): the lab's registry on mc-lb1, plain HTTP.
IMAGE = "10.213.77.10:5000/journal"
TAGS = f"docker image ls {IMAGE} --format '{{{{.Tag}}}}'"
HOOK_JOBS = "/tmp/opsbook-hook-rq-jobs"  # noqa: S108 (on the app hosts; hooks/before_restart.yml writes it)
# PostgreSQL on mc-db1: the service db of the project journal in mc-db1's engine (tests/test_compose_db.py).
DB_CONTAINER = (
    "$(docker ps -q --filter label=com.docker.compose.project=journal --filter label=com.docker.compose.service=db)"
)
# group_vars/all/zz-compose.yml's database password, as the containers must see it.
DB_PASSWORD = 'c0mp"ose $HOME ${PATH} `id` \\t\\n #x'  # noqa: S105 (the lab's, not a secret)


def deploy(ref: str, *extra: str):
    return playbook("deploy.yml", "-e", f"deploy_ref={ref}", *extra)


def host_release(name: str) -> str:
    return HOSTS[name].run("readlink /srv/journal/current").stdout.strip().removeprefix("releases/")


def served(n: int = 6) -> set[str]:
    versions = set()
    for _ in range(n):
        out = HOSTS["mc-lb1"].run("curl -s --max-time 10 http://127.0.0.1/version/")
        versions.add(json.loads(out.stdout or "{}").get("version", "?"))
    return versions


def containers(name: str) -> dict[str, dict]:
    """The running containers of the project `journal` on host name: {service: {image, state, health}}."""
    out = HOSTS[name].run(
        "docker ps --filter label=com.docker.compose.project=journal --format "
        "'{{.Label \"com.docker.compose.service\"}} {{.Image}} {{.State}} {{.Status}}'"
    )
    assert out.rc == 0, out.stderr
    found = {}
    for line in out.stdout.splitlines():
        service, image, state, *status = line.split()
        found[service] = {"image": image, "state": state, "status": " ".join(status)}
    return found


def task_hosts(stdout: str, task: str) -> list[str]:
    block = stdout.split(f"{task}]")[1].split("TASK [")[0] if f"{task}]" in stdout else ""
    return re.findall(r"^(?:changed|ok): \[([\w-]+)\]", block, re.MULTILINE)


def applied(migration: str) -> int:
    sql = f"SELECT count(*) FROM django_migrations WHERE app || '.' || name = '{migration}'"  # noqa: S608 (a test constant)
    out = HOSTS["mc-db1"].run(f"docker exec --user postgres {DB_CONTAINER} psql -XAtd journal -c %s", sql)
    assert out.rc == 0, out.stderr
    return int(out.stdout.strip())


def runs_release(name: str, release: str) -> None:
    found = containers(name)
    assert sorted(found) == SERVICES[name], found
    for service, c in found.items():
        assert c["image"] == f"{IMAGE}:{release}" and c["state"] == "running", (name, service, c)
    assert "(healthy)" in found["web"]["status"], found["web"]


def test_provision_installed_the_engine_and_compose_v2():
    for name in APP_HOSTS:
        h = HOSTS[name]
        assert h.service("docker").is_running and h.service("docker").is_enabled
        version = h.run("docker compose version --short")
        assert version.rc == 0 and version.stdout.strip().lstrip("v") == "2.40.3", version.stdout + version.stderr
        # No systemd unit of the app: its processes are the project's containers.
        assert h.run("systemctl list-unit-files 'journal*'").stdout.count("journal") == 0


def test_v1_first_deploy_runs_every_service_from_the_release_image():
    result, _ = deploy("v1")
    assert result.returncode == 0, result.stdout[-6000:]
    release = host_release("mc-app1")
    assert release.endswith("-v1") and host_release("mc-app2") == release
    for name in APP_HOSTS:
        runs_release(name, release)
        env = HOSTS[name].file("/srv/journal/shared/env")
        assert env.mode == 0o600 and env.user == "journal"
        compose = HOSTS[name].file(f"/srv/journal/releases/{release}/compose.yml")
        assert compose.mode == 0o640 and f"image: {IMAGE}:{release}" in compose.content_string
    assert served() == {release}
    assert applied("articles.0001_initial") == 1
    # Built once, on the controller, pushed to the registry once; each host pulled it (no archive copied).
    assert f"DEPLOY | Build the image {IMAGE}:{release}" in result.stdout
    pushed = result.stdout.split("DEPLOY | Push the image to the registry (app_image)]")[1].split("TASK [")[0]
    assert pushed.count("changed: [") == 1 and "-> localhost]" in pushed, pushed
    assert sorted(task_hosts(result.stdout, "DEPLOY | Pull the image from the registry (app_image)")) == list(APP_HOSTS)
    assert task_hosts(result.stdout, "DEPLOY | Copy the image to the host") == []
    tags = json.loads(HOSTS["mc-lb1"].run("curl -s http://127.0.0.1:5000/v2/journal/tags/list").stdout)
    assert tags["tags"] == [release], tags
    for name in APP_HOSTS:  # the engine knows where the image came from
        digests = HOSTS[name].run(f"docker image inspect --format '{{{{json .RepoDigests}}}}' {IMAGE}:{release}")
        assert json.loads(digests.stdout)[0].startswith(f"{IMAGE}@sha256:"), digests.stdout


def test_the_containers_read_the_env_file_as_written():
    """The database password, full of what sh, systemd and Compose each treat specially, arrives whole
    (compared by digest: never printed). The health gate passed too, which logs in with it."""
    want = hashlib.sha256(DB_PASSWORD.encode()).hexdigest()
    for name in APP_HOSTS:
        out = HOSTS[name].run(
            "docker exec journal-web-1 python -c %s",
            "import hashlib, os; print(hashlib.sha256(os.environ['DATABASE_PASSWORD'].encode()).hexdigest())",
        )
        assert out.rc == 0, out.stderr
        assert out.stdout.strip() == want, name
        # Nor is it in any container's or process's argv.
        ps = HOSTS[name].run("ps -eo args")
        assert "c0mp" not in ps.stdout


def rq_jobs(name: str) -> dict[str, dict]:
    """The hook's jobs noted on host name: {job id: {status, result}}, read through that host's RQ worker."""
    ids = HOSTS[name].run(f"cat {HOOK_JOBS}").stdout.split()
    out = HOSTS[name].run(
        "docker exec journal-rq-1 python -c %s %s",
        "import json, os, sys; from redis import Redis; from rq.job import Job;"
        " r = Redis.from_url(os.environ['RQ_REDIS_URL']);"
        " print(json.dumps({i: {'status': str(Job.fetch(i, connection=r).get_status()),"
        " 'result': Job.fetch(i, connection=r).return_value()} for i in sys.argv[1].split(',')}))",
        ",".join(ids),
    )
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def test_check_mode_reports_the_release_and_changes_nothing():
    live = host_release("mc-app1")
    images = {name: HOSTS[name].run(TAGS).stdout.split() for name in APP_HOSTS}
    result, recap = deploy("v2", "--check")
    assert result.returncode == 0, result.stdout[-4000:]
    assert result.stdout.count("would install release") == 2, result.stdout[-4000:]
    assert "DEPLOY | Build the image" not in result.stdout
    for name in APP_HOSTS:
        assert host_release(name) == live
        runs_release(name, live)
        assert HOSTS[name].run(TAGS).stdout.split() == images[name]


def test_v2_migrates_once_and_rolls_out_without_a_failed_request():
    v1 = host_release("mc-app1")
    hooks = json.dumps({"deploy_hooks": {"before_restart": str(SCENARIO_DIR / "hooks" / "before_restart.yml")}})
    (result, _), counts = under_load(LBS, lambda: deploy("v2", "-e", hooks))
    assert result.returncode == 0, result.stdout[-6000:]
    no_failed_request(counts, at_least=500)
    assert sorted(v.rsplit("-", 1)[-1] for v in counts["mc-lb1"]["versions"]) == ["v1", "v2"], counts
    migrate = "DEPLOY | In a one-off container, python manage.py migrate --noinput"
    assert task_hosts(result.stdout, migrate) == ["mc-app1"]
    assert applied("articles.0002_article_summary") == 1
    release = host_release("mc-app1")
    assert release.endswith("-v2") and host_release("mc-app2") == release and release != v1
    for name in APP_HOSTS:
        runs_release(name, release)
        # No one-off container is left behind.
        assert HOSTS[name].run("docker ps -a --filter label=com.docker.compose.oneoff=True -q").stdout.strip() == ""
    assert served() == {release}


def test_v2_replaced_each_rq_worker_only_after_its_running_job_finished():
    """The hook gave each host's RQ worker an 8 s job just before its containers were replaced: Compose's
    SIGTERM is RQ's warm shutdown, so every job finished with its result, none failed."""
    for name in APP_HOSTS:
        jobs = rq_jobs(name)
        assert len(jobs) == 1, jobs
        for job in jobs.values():
            assert job["status"] == "JobStatus.FINISHED" or job["status"] == "finished", job
            assert job["result"]["seconds"] == 8.0 and job["result"]["hostname"] == name, job


def test_rerun_changes_nothing():
    result, recap = deploy("v2")
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap and all(changed == 0 for changed in recap.values()), recap


def test_v3_health_failure_rolls_back_without_a_failed_request():
    live = host_release("mc-app1")
    (result, _), counts = under_load(LBS, lambda: deploy("v3", "-e", "deploy_health_timeout=20"))
    assert result.returncode != 0
    assert "failed after the switch at step 'DEPLOY | Health gate on this host'" in result.stdout
    assert "Every switched host was rolled back" in result.stdout
    no_failed_request(counts, at_least=300)
    assert {host_release(h) for h in APP_HOSTS} == {live}
    for name in APP_HOSTS:
        runs_release(name, live)
    assert served() == {live}


def test_rollback_to_v1_by_name_reverses_v2s_migration():
    """rollback.yml to v1 with rollback_migrations=reverse: v2's deploy recorded the migration state it replaced
    (showmigrations in a one-off container of v2's image), so the reversal runs `manage.py migrate articles 0001`
    the same way, before any host switches, and then the code goes back to v1 under load."""
    v1 = sorted(r for r in HOSTS["mc-app1"].run("ls /srv/journal/releases").stdout.split() if r.endswith("-v1"))[-1]
    v2 = host_release("mc-app1")
    record = json.loads(HOSTS["mc-app1"].file(f"/srv/journal/releases/{v2}/.opsbook-migrations.json").content_string)
    assert record["replaces"] == v1 and record["state"]["articles"] == "0001_initial", record
    assert applied("articles.0002_article_summary") == 1
    reverse = ("-e", "rollback_migrations=reverse", "-e", "rollback_confirm=journal")
    (result, _), counts = under_load(LBS, lambda: playbook("rollback.yml", "-e", f"rollback_release={v1}", *reverse))
    assert result.returncode == 0, result.stdout[-6000:]
    no_failed_request(counts, at_least=200)
    assert "manage.py migrate articles 0001_initial" in result.stdout
    assert applied("articles.0002_article_summary") == 0
    for name in APP_HOSTS:
        assert host_release(name) == v1
        runs_release(name, v1)
    assert served() == {v1}


def test_pruned_releases_take_their_images_with_them():
    """The next good deploy prunes (deploy_keep_releases=2, the least): the failed v3 goes, its directory and
    its image alike; every kept release's image stays loaded (a rollback to it needs no build). The
    controller keeps the app's newest two images, no more."""
    before = {name: set(HOSTS[name].run("ls /srv/journal/releases").stdout.split()) for name in APP_HOSTS}
    assert all(any(r.endswith("-v3") for r in kept) for kept in before.values()), before
    result, _ = deploy("v2", "-e", "deploy_keep_releases=2")
    assert result.returncode == 0, result.stdout[-6000:]
    for name in APP_HOSTS:
        kept = set(HOSTS[name].run("ls /srv/journal/releases").stdout.split())
        assert not any(r.endswith("-v3") for r in kept), kept
        images = HOSTS[name].run(TAGS).stdout.split()
        assert set(images) == kept, (name, images, kept)
        runs_release(name, host_release(name))
    # The controller keeps the newest deploy_keep_releases images of the app too, this run's among them.
    out = subprocess.run(
        ["docker", "image", "ls", IMAGE, "--filter", "label=org.opsbook.release", "--format", "{{.Tag}}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert len(out.stdout.split()) <= 2 and host_release("mc-app1") in out.stdout.split(), out.stdout


def health(report_dir: Path, *extra: str) -> tuple[int, dict]:
    result, _ = playbook("health.yml", "-e", f"maintenance_report_dir={report_dir}", *extra)
    [path] = sorted(report_dir.glob("health-*.json"))
    return result.returncode, json.loads(path.read_text())


def test_health_reads_the_containers_and_finds_a_stopped_one(tmp_path):
    """health.yml under compose: every container of the project running and healthy, the engine instead of
    app units; a stopped RQ worker container is critical."""
    rc, data = health(tmp_path / "up")
    assert rc == 0
    found = {(f["host"], f["subject"]): f for f in data["findings"] if f["check"] == "container"}
    assert set(found) == {(h, f"journal-{s}-1") for h in APP_HOSTS for s in SERVICES[h]}, sorted(found)
    assert all(f["level"] == "ok" and "restart(s)" in f["detail"] for f in found.values()), found
    assert "healthy" in found[("mc-app1", "journal-web-1")]["detail"]
    services = {(f["host"], f["subject"]): f["level"] for f in data["findings"] if f["check"] == "service"}
    assert services[("mc-app1", "docker.service")] == "ok" and services[("mc-app2", "docker.service")] == "ok"
    assert not [s for (_, s) in services if s.startswith("journal")], services
    assert {f["level"] for f in data["findings"] if f["check"] == "app health"} == {"ok"}
    # Queue depths through the broker, read with Python inside the app's container (no virtualenv on the host).
    assert [f["subject"] for f in data["findings"] if f["check"] == "queue depth"] == ["celery"], data["findings"]
    # The database answers psql in its container on mc-db1 (app_db_compose_service), not a native PostgreSQL.
    [db] = [f for f in data["findings"] if f["check"] == "database"]
    assert db["host"] == "mc-db1" and db["level"] == "ok", db
    assert db["detail"].startswith("15.") and db["detail"].endswith("(container journal-db-1)"), db
    assert HOSTS["mc-app2"].run("docker stop journal-rq-1").rc == 0
    try:
        # A service with no running container stands for a stopped database: critical, saying so.
        rc, data = health(
            tmp_path / "down", "-e", "maintenance_fail_on_critical=true", "-e", "app_db_compose_service=nosuch"
        )
        assert rc != 0
        [stopped] = [f for f in data["findings"] if f["check"] == "container" and f["host"] == "mc-app2"
                     and f["subject"] == "journal-rq-1"]  # fmt: skip
        assert stopped["level"] == "critical" and stopped["detail"].startswith("exited"), stopped
        [db] = [f for f in data["findings"] if f["check"] == "database"]
        assert db["level"] == "critical" and db["detail"] == (
            "0 running containers of compose service nosuch (exactly one must run)"
        ), db
    finally:
        assert HOSTS["mc-app2"].run("docker start journal-rq-1").rc == 0


def started(name: str) -> dict[str, tuple[str, str]]:
    """The project's containers on host name: {service: (container id, started at)}."""
    out = HOSTS[name].run(
        "docker inspect --format '{{index .Config.Labels \"com.docker.compose.service\"}} {{.Id}} {{.State.StartedAt}}'"
        " $(docker ps -aq --filter label=com.docker.compose.project=journal)"
    )
    assert out.rc == 0, out.stderr
    return {service: (cid, at) for service, cid, at in (line.split() for line in out.stdout.splitlines())}


def test_restart_check_mode_names_the_services_and_restarts_nothing():
    before = {name: started(name) for name in APP_HOSTS}
    result, _ = playbook("restart.yml", "--check", "-e", "restart_scope=workers")
    assert result.returncode == 0, result.stdout[-4000:]
    release = host_release("mc-app1")
    assert f"would restart beat, rq, worker on {release}" in result.stdout, result.stdout[-4000:]
    assert f"would restart rq, worker on {release}" in result.stdout, result.stdout[-4000:]
    assert "out of the load balancer meanwhile" not in result.stdout
    assert {name: started(name) for name in APP_HOSTS} == before


def test_restart_under_load_restarts_every_service_in_place():
    """restart.yml under compose: one host at a time out of the load balancer, `docker compose restart` of
    every service of the project (the same containers, started again), the health gate, back in: no request
    fails. The workers scope leaves web running and the host in the load balancer."""
    before = {name: started(name) for name in APP_HOSTS}
    (result, _), counts = under_load(LBS, lambda: playbook("restart.yml"))
    assert result.returncode == 0, result.stdout[-6000:]
    no_failed_request(counts, at_least=100)
    for name in APP_HOSTS:
        after = started(name)
        assert sorted(after) == SERVICES[name], after
        for service, (cid, at) in after.items():
            assert cid == before[name][service][0], (name, service)  # restarted, not recreated
            assert at > before[name][service][1], (name, service, at)
        runs_release(name, host_release(name))
    stats = json.loads(result.stdout.split("RUN:", 1)[1].strip().splitlines()[0])
    assert stats["restart_result"] == "restarted" and sorted(stats["restart_hosts"]) == list(APP_HOSTS), stats
    assert {h: sorted(u) for h, u in stats["restart_units"].items()} == SERVICES, stats

    before = {name: started(name) for name in APP_HOSTS}
    result, _ = playbook("restart.yml", "-e", "restart_scope=workers")
    assert result.returncode == 0, result.stdout[-6000:]
    for name in APP_HOSTS:
        after = started(name)
        assert after["web"] == before[name]["web"], name
        assert all(after[s][1] > before[name][s][1] for s in SERVICES[name] if s != "web"), (name, after)
    assert served() == {host_release("mc-app1")}


def test_celery_yml_inspects_the_workers_with_python_in_the_apps_container(tmp_path):
    """celery.yml under compose: its modules run with Python inside a running container of the project (provision's
    compose-python script on the host), which has the app's Celery and RQ: every worker answers."""
    script = HOSTS["mc-app1"].file("/usr/local/lib/opsbook/python-in/journal")
    assert script.mode == 0o755 and script.user == "root"
    report = tmp_path / "celery.json"
    result, _ = playbook("celery.yml", "-e", f"celery_report_path={report}")
    assert result.returncode == 0, result.stdout[-4000:]
    summary = json.loads(report.read_text())["summary"]
    assert summary["workers_answered"] == 2 and summary["unknown_workers"] == [], summary
    assert "celery" in summary["queue_depth"], summary
    result, _ = playbook("celery.yml", "-e", "celery_backend=rq", "-e", '{"celery_queues": ["default"]}')
    assert result.returncode == 0, result.stdout[-4000:]
    stats = json.loads(result.stdout.split("RUN:", 1)[1].strip().splitlines()[0])
    assert sorted(stats["rq"]["workers"]) == ["rq@mc-app1", "rq@mc-app2"], stats
    assert stats["rq"]["queue_depth"] == {"default": 0}, stats
