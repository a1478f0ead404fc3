"""Issue 25: a public Django + Celery app nobody here wrote, django-ca, run by inventory variables
alone, with Celery on RabbitMQ.

Its releases 3.1.0 and 3.2.0 are fetched from PyPI as published (sdists pinned by sha256, not
committed, not edited: tests/lab/byo_artifacts.py) with a wheelhouse of their dependencies, and
deployed to the lab's hosts as a third app beside the demo's journal, from the example inventory
inventories/examples/django-ca (inventories/lab_djangoca links it and changes only what the lab
needs: slots, ports, the archive's path). Its Django project is in the sdist's ca/ directory:
app_workdir runs Gunicorn, the Celery worker and beat, migrate and collectstatic there. One
module-scoped run, six playbooks: provision (RabbitMQ from Debian on db1, with django-ca's vhost
and user), blue_green.yml 3.1.0 (blue on a new lab), blue_green.yml 3.2.0 to the idle slot under
the gate and switched, backup.yml, restore.yml drill and blue_green_switch.yml back to 3.1.0 (the
rollback: with slots, rollback.yml refuses and the switch back is instant), then restart.yml of the
live slot's web processes. Between them, without a playbook: a Django user created by 3.1.0's
manage.py, and a Celery task sent through RabbitMQ to 3.2.0's workers. The tests read what each left.

lb1 serves django-ca with Caddy (opsbook_lb_software: caddy in inventories/lab_djangoca, issue 20
item 3), beside nginx serving journal: both switches and the restart run under a constant load
through Caddy (tests/lab/loadgen.py, 50 requests/s), which must fail no request. The switches
rewrite Caddy's upstream file and reload it; the restart takes each app host out of Caddy and back
(roles/deploy/tasks/lb.yml, the rolling drain deploy.yml uses too).
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from byo_artifacts import fetch_sdist, wheelhouse
from lab_helpers import (
    REDIS_TASKS,
    PlaybookRuns,
    active_slot,
    app_psql,
    config_archive,
    env_file_names,
    lab_exec,
    lb_address,
    slot_release,
    task_hosts,
)
from loadgen import LoadGenerator

pytestmark = pytest.mark.lab

INVENTORY = "inventories/lab_djangoca"
APP = "djangoca"
SDISTS = {
    "3.1.0": "360913b545523e624cc4dee9225c7589b05b4103e62181b5e954fd3f0a24a486",
    "3.2.0": "d631b2c91d27b0fd362db1197a4712703caa1bdce52b935c8e1b61e6c3984c07",
}
# What each release installs (example inventory: app_install_extras, app_extra_requirements), and
# its build backend (pyproject.toml: hatchling with hatch-vcs). Every dependency has a wheel.
REQUIREMENTS = [
    [f"django-ca[celery,yaml]=={version}", "psycopg[binary,pool]>=3.1", "gunicorn==23.0.0", "hatchling", "hatch-vcs"]
    for version in SDISTS
]
LB_URL = "http://127.0.0.1:8083"
HEALTH = "/admin/login/"
# A Django user per run (a lab left up keeps the last run's).
USER = f"labadmin{int(time.time())}"


def lb_status(path: str = HEALTH) -> int:
    """HTTP status of path through lb1's Caddy for django-ca (port 8083)."""
    out = lab_exec("lb1", "curl", "-s", "-o", "/dev/null", "--max-time", "10", "-w", "%{http_code}", LB_URL + path)
    return int(out.stdout or 0)


def served() -> dict:
    """The active slot, its release and the status lb1 answers on the admin's login page."""
    slot = active_slot(APP)
    return {"slot": slot, "release": slot_release(APP, slot), "lb": lb_status()}


def in_slot(slot: str, *argv: str, env: dict | None = None) -> str:
    """argv on app1 as the units run it: django-ca's user, the env file, in <slot>/ca (app_workdir)."""
    return lab_exec(
        "app1",
        "systemd-run", "--pipe", "--wait", "--collect", "--quiet", f"--uid={APP}", f"--gid={APP}",
        f"--property=EnvironmentFile=/srv/{APP}/shared/env", f"--property=WorkingDirectory=/srv/{APP}/{slot}/ca",
        *(f"--setenv={k}={v}" for k, v in (env or {}).items()),
        f"/srv/{APP}/{slot}/venv/bin/{argv[0]}", *argv[1:],
    ).stdout  # fmt: skip


def count_user() -> str:
    return app_psql(APP, f"select count(*) from auth_user where username = '{USER}'")


@pytest.fixture(scope="module")
def byo(lab):
    """Every playbook run of the module, in order, each with its wall time; the log in tests/output."""
    book = PlaybookRuns("byo-djangoca", INVENTORY)
    runs, run = book.runs, book.run
    rate = float(os.environ.get("LOAD_RATE", "50"))

    def under_load(name: str, *argv: str) -> None:
        """A playbook run while the load generator sends through lb1's Caddy; its counts in runs[name]."""
        url = f"http://{lb_address()}:8083{HEALTH}"
        # Django's ALLOWED_HOSTS: the lab's server name, so that every request reaches the login page.
        load = LoadGenerator(url, threads=4, rate=rate, host_header="ca.lab.test").start()
        try:
            run(name, *argv)
        finally:
            runs[name]["load"] = load.stop()
            book.log.write(f"==== {name}: requests through Caddy: {json.dumps(runs[name]['load'])}\n")

    # A lab left up by an earlier run: its django-ca processes, stopped at the end of that run, back.
    for host in ("app1", "app2"):
        lab_exec(host, "systemctl", "start", f"{APP}-blue.service", f"{APP}-green.service", check=False)
    t0 = time.monotonic()
    for version, digest in SDISTS.items():
        fetch_sdist("django-ca", version, digest)
    wheelhouse("django-ca", REQUIREMENTS, [])
    runs["fetch"] = {"s": round(time.monotonic() - t0)}
    try:
        run("provision", "provision.yml")
        run("deploy A", "blue_green.yml", "-e", "deploy_ref=3.1.0")
        runs["after A"] = served()
        # Data written by 3.1.0 before the upgrade: a Django user, by its own manage.py.
        env = {"DJANGO_SUPERUSER_PASSWORD": "lab-admin-password", "DJANGO_SUPERUSER_EMAIL": "lab@example.org"}
        slot = runs["after A"]["slot"]
        in_slot(slot, "python", "manage.py", "createsuperuser", "--noinput", "--username", USER, env=env)
        under_load("deploy B", "blue_green.yml", "-e", "deploy_ref=3.2.0")
        runs["after B"] = served()
        # A task through RabbitMQ to 3.2.0's workers: `celery call` publishes it, a worker logs it done.
        slot = runs["after B"]["slot"]
        task_id = in_slot(slot, "celery", "-A", "ca", "call", "django_ca.tasks.acme_cleanup").strip()
        runs["task"] = {"id": task_id, "ping": in_slot(slot, "celery", "-A", "ca", "inspect", "ping"), "log": ""}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and f"[{task_id}] succeeded" not in runs["task"]["log"]:
            time.sleep(1)
            runs["task"]["log"] = "".join(
                lab_exec(h, "journalctl", "-q", "--no-pager", "-u", f"{APP}-{slot}-worker.service").stdout
                for h in ("app1", "app2")
            )
        run("backup", "backup.yml")
        run("drill", "restore.yml", "-e", "restore_mode=drill")
        under_load("switch back", "blue_green_switch.yml")
        runs["after switch"] = served()
        # The rolling drain behind Caddy: each app host out of lb1's Caddy, its web restarted, back in.
        under_load("restart", "restart.yml", "-e", "restart_scope=web")
        runs["caddy"] = {
            "server": lab_exec("lb1", "curl", "-sI", "--max-time", "10", LB_URL + HEALTH).stdout,
            "active": lab_exec("lb1", "systemctl", "is-active", "caddy.service", check=False).stdout.strip(),
            "upstream": lab_exec("lb1", "cat", f"/etc/caddy/opsbook/{APP}-upstream.caddy").stdout,
        }
        # Django 5.2's shell first says what it imported: the count is the last word.
        runs["read back"] = in_slot(
            runs["after switch"]["slot"], "python", "manage.py", "shell", "-c",
            f"from django.contrib.auth.models import User; print(User.objects.filter(username='{USER}').count())",
        ).split()[-1:]  # fmt: skip
        yield runs
    finally:
        print(f"test_byo_djangoca wall time: {book.close()}")
        # The lab's later tests walk journal only: django-ca's processes stopped, not left to take CPU.
        for host in ("app1", "app2"):
            lab_exec(host, "systemctl", "stop", f"{APP}-*", check=False)


def test_3_1_0_was_deployed_from_its_sdist_and_runs_in_its_ca_directory(byo):
    after = byo["after A"]
    assert after["slot"] in ("blue", "green")
    assert after["release"].endswith("-3.1.0"), after
    assert after["lb"] == 200, after
    # The release is the sdist's tree without its django_ca-3.1.0/ directory, installed with the
    # celery and yaml extras, psycopg's binary wheel and Gunicorn, linked to the rendered settings.
    release = f"/srv/{APP}/releases/{after['release']}"
    assert lab_exec("app1", "test", "-f", f"{release}/ca/manage.py", check=False).returncode == 0
    pip = lab_exec("app1", f"{release}/venv/bin/pip", "list", "--format=json").stdout
    installed = {p["name"].lower(): p["version"] for p in json.loads(pip)}
    assert installed["django-ca"] == "3.1.0" and installed["gunicorn"] == "23.0.0", installed
    assert {"celery", "psycopg", "psycopg-binary", "pyyaml"} <= set(installed), installed
    link = lab_exec("app1", "readlink", f"{release}/django-ca.yaml").stdout.strip()
    assert link == f"/srv/{APP}/shared/config/django-ca.yaml"
    # app_workdir: every unit of the slot runs in <slot>/ca; collectstatic wrote into the release's ca/.
    for unit in (f"{APP}-{after['slot']}.service", f"{APP}-{after['slot']}-worker.service"):
        shown = lab_exec("app1", "systemctl", "show", "-P", "WorkingDirectory", unit).stdout.strip()
        assert shown == f"/srv/{APP}/{after['slot']}/ca", (unit, shown)
    assert lab_exec("app1", "test", "-d", f"{release}/ca/static/admin", check=False).returncode == 0


def test_3_2_0_went_to_the_idle_slot_under_the_gate_and_lb1_serves_it(byo):
    after = byo["after B"]
    assert after["slot"] != byo["after A"]["slot"] and after["release"].endswith("-3.2.0"), after
    assert after["lb"] == 200, after
    # django-ca reports no version (app_version_source: none): the run says the gates check health only.
    assert "the gates check health only" in byo["deploy B"]["out"], byo["deploy B"]["out"][-3000:]
    # Each deploy that built a release ran Django's migrate once (app_commands unset), in ca/.
    for name in ("deploy A", "deploy B"):
        out = byo[name]["out"]
        if task_hosts(out, "Create the release with its virtualenv"):
            assert task_hosts(out, "DEPLOY | manage.py migrate --noinput") == ["app1"], name


def test_a_celery_task_went_through_rabbitmq_to_the_new_slots_workers(byo):
    task = byo["task"]
    assert re.fullmatch(r"[0-9a-f-]{36}", task["id"]), task
    assert "pong" in task["ping"], task["ping"]
    assert f"Task django_ca.tasks.acme_cleanup[{task['id']}] succeeded" in task["log"], task["log"][-3000:]
    # The broker is RabbitMQ on db1, in django-ca's own virtual host.
    env = lab_exec("app1", "grep", "^CELERY_BROKER_URL=", f"/srv/{APP}/shared/env").stdout
    assert env.startswith('CELERY_BROKER_URL="amqp://djangoca:') and env.rstrip().endswith('@db1:5672/djangoca"')
    vhosts = lab_exec("db1", "rabbitmqctl", "-q", "list_vhosts").stdout.split()
    assert APP in vhosts, vhosts


def test_the_schema_is_migrated_and_holds_the_user(byo):
    tables = set(app_psql(APP, "select tablename from pg_tables where schemaname = 'public'").split())
    assert {"auth_user", "django_migrations", "django_ca_certificateauthority"} <= tables, tables
    assert count_user() == "1"


def test_the_backup_is_verified_and_counts_the_user(byo):
    manifest = json.loads(lab_exec("db1", "cat", f"/var/backups/opsbook/{APP}/latest.json").stdout)
    assert manifest["verification"]["level"] in ("content", "restore"), manifest["verification"]
    assert manifest["tables"]["public.auth_user"] == int(app_psql(APP, "select count(*) from auth_user")) >= 1
    assert manifest["database"] == APP
    # Taken while 3.2.0's slot was live: the manifest names that slot's release (backup:live_release).
    assert manifest["release"] == byo["after B"]["release"], manifest["release"]


def test_the_drill_restored_the_backup_into_a_scratch_database(byo):
    drill = byo["drill"]["out"]
    assert re.search(r"Drill: backup \S+ restored into a scratch database", drill), drill[-3000:]
    assert count_user() == "1"  # the live database untouched


def test_the_switch_back_serves_3_1_0_again_with_the_data(byo):
    after = byo["after switch"]
    assert after["slot"] == byo["after A"]["slot"] and after["release"] == byo["after A"]["release"], after
    assert after["lb"] == 200, after
    # 3.2.0 keeps running in the other slot, for an instant switch forward again.
    assert slot_release(APP, byo["after B"]["slot"]) == byo["after B"]["release"]
    assert byo["read back"] == ["1"], byo["read back"]


def test_lb1_serves_django_ca_with_caddy_and_no_request_failed_through_it(byo):
    """Issue 20 item 3: Caddy answers on 8083 (its Server header), its upstream file lists the live
    slot's servers again after the restart, and no request failed during the switch to 3.2.0, the
    switch back, or the restart that took each host out of Caddy and back."""
    caddy = byo["caddy"]
    assert caddy["active"] == "active", caddy
    assert re.search(r"^Server: Caddy\r?$", caddy["server"], re.M | re.I), caddy["server"]
    port = 8121 if byo["after switch"]["slot"] == "blue" else 8122
    assert [line for line in caddy["upstream"].splitlines() if not line.startswith("#")] == [
        f"to app1:{port}",
        f"to app2:{port}",
    ], caddy["upstream"]
    for name in ("deploy B", "switch back", "restart"):
        load = byo[name]["load"]
        assert load["failed"] == 0 and load["ok"] >= 100, (name, load)
    # The restart took each host out of Caddy and back in (upstream file edited, validated, reloaded).
    tasks = byo["restart"]["out"].split("TASK [")
    sections = [task for task in tasks if "Mark the Caddy upstream server" in task[:200]]
    marked = re.findall(r"^changed: \[(app\d) -> lb1\b", "".join(sections), re.M)
    assert sorted(marked) == ["app1", "app1", "app2", "app2"], byo["restart"]["out"][-3000:]


def test_django_ca_gets_rabbitmq_and_no_redis(byo):
    """app_redis: false (Celery on RabbitMQ, no result backend, no cache server): provision ran none of its
    Redis tasks (the redis-server db1 runs in this lab is the demo's journal's), the environment file names
    the RabbitMQ broker and no Redis, and the configuration backup of db1 holds /etc/rabbitmq, not /etc/redis."""
    out = byo["provision"]["out"]
    assert [task for task in REDIS_TASKS if task in out] == [], out[-3000:]
    for host in ("app1", "app2"):
        names = env_file_names(APP, host)
        assert "CELERY_BROKER_URL" in names and not names & {"REDIS_URL", "RQ_REDIS_URL"}, names
    saved = config_archive(APP, "db1")
    assert any(path.startswith("etc/rabbitmq/") for path in saved), saved
    assert not [path for path in saved if path.startswith("etc/redis")], saved
