"""Issue 25: a public Flask app nobody here wrote, ihatemoney, run by inventory variables alone.

Its releases 7.2.0 and 7.2.1 are fetched from PyPI as published (sdists pinned by sha256, not
committed, not edited: tests/lab/byo_artifacts.py) with a wheelhouse of their dependencies, and
deployed to the lab's hosts as a second app beside the demo's journal, from the example inventory
inventories/examples/ihatemoney (inventories/lab_ihatemoney links it and changes only what the lab
needs: slots, ports, the archive's path). One module-scoped run, five playbooks: provision,
blue_green.yml 7.2.0 (blue on a new lab), blue_green.yml 7.2.1 to the idle slot under the gate and switched,
then backup.yml, restore.yml drill and blue_green_switch.yml back to 7.2.0 (the rollback: with
slots, rollback.yml refuses and the switch back is instant). The tests read what each left.
"""

from __future__ import annotations

import json
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
    slot_release,
    task_hosts,
)

pytestmark = pytest.mark.lab

INVENTORY = "inventories/lab_ihatemoney"
APP = "ihatemoney"
SDISTS = {
    "7.2.0": "f69c4ecba3987afcdc9949071837bae553cbc046e900318c3f3d39deadf1c1c2",
    "7.2.1": "e74fc718f68e1ec400cf9c4364025a91febb86c9b523aeb33a52e5adbeaa77e1",
}
# What each release installs (example inventory: app_install_extras, app_extra_requirements), and
# its build backend (pyproject.toml: hatchling, whose build hook needs Babel). debts publishes no wheel.
REQUIREMENTS = [
    [f"ihatemoney[database]=={version}", "gunicorn==23.0.0", "hatchling~=1.21.1", "Babel>=2.13.1"] for version in SDISTS
]
FROM_SOURCE = ["debts~=0.5"]
LB_URL = "http://127.0.0.1:8082"
# A project per run (a lab left up keeps the last run's): ihatemoney's project ids are unique.
PROJECT = {
    "name": "Lab trip",
    "id": f"labtrip{int(time.time())}",
    "password": "lab-trip-password",
    "contact_email": "lab@example.org",
}


def lb_get(path: str, *curl: str) -> tuple[int, str]:
    """(HTTP status, body) of path through lb1's nginx for ihatemoney (port 8082)."""
    out = lab_exec("lb1", "curl", "-s", "--max-time", "10", "-w", "\n%{http_code}", *curl, LB_URL + path).stdout
    body, _, status = out.rpartition("\n")
    return int(status or 0), body


def served() -> dict:
    """The active slot, its release and what lb1 answers on /healthcheck."""
    slot = active_slot(APP)
    return {"slot": slot, "release": slot_release(APP, slot), "lb": lb_get("/healthcheck")}


@pytest.fixture(scope="module")
def byo(lab):
    """Every playbook run of the module, in order, each with its wall time; the log in tests/output."""
    book = PlaybookRuns("byo-ihatemoney", INVENTORY)
    runs, run = book.runs, book.run

    # A lab left up by an earlier run: its ihatemoney processes, stopped at the end of that run, back.
    for host in ("app1", "app2"):
        lab_exec(host, "systemctl", "start", f"{APP}-blue.service", f"{APP}-green.service", check=False)
    t0 = time.monotonic()
    for version, digest in SDISTS.items():
        fetch_sdist(APP, version, digest)
    wheelhouse(APP, REQUIREMENTS, FROM_SOURCE)
    runs["fetch"] = {"s": round(time.monotonic() - t0)}
    try:
        run("provision", "provision.yml")
        run("deploy A", "blue_green.yml", "-e", "deploy_ref=7.2.0")
        runs["after A"] = served()
        # Data written by 7.2.0 before the upgrade: a project through ihatemoney's own API.
        form = [arg for key, value in PROJECT.items() for arg in ("--data-urlencode", f"{key}={value}")]
        runs["project"] = {"created": lb_get("/api/projects", *form)}
        run("deploy B", "blue_green.yml", "-e", "deploy_ref=7.2.1")
        runs["after B"] = served()
        run("backup", "backup.yml")
        run("drill", "restore.yml", "-e", "restore_mode=drill")
        run("switch back", "blue_green_switch.yml")
        runs["after switch"] = served()
        yield runs
    finally:
        print(f"test_byo_ihatemoney wall time: {book.close()}")
        # The lab's later tests walk journal only: ihatemoney's processes stopped, not left to take CPU.
        for host in ("app1", "app2"):
            lab_exec(host, "systemctl", "stop", f"{APP}-*", check=False)


def test_7_2_0_was_deployed_and_served_through_lb1(byo):
    # blue on a new lab; a lab left up by an earlier run gets it in the slot idle then.
    after = byo["after A"]
    assert after["slot"] in ("blue", "green")
    assert after["release"].endswith("-7.2.0"), after
    assert after["lb"] == (200, "OK"), after
    # The release is the sdist's tree without its ihatemoney-7.2.0/ directory, installed with the
    # database extra and Gunicorn, and linked to the rendered settings file.
    release = f"/srv/{APP}/releases/{after['release']}"
    assert lab_exec("app1", "test", "-f", f"{release}/pyproject.toml", check=False).returncode == 0
    pip = lab_exec("app1", f"{release}/venv/bin/pip", "list", "--format=json").stdout
    installed = {p["name"].lower(): p["version"] for p in json.loads(pip)}
    assert installed["ihatemoney"] == "7.2.0" and installed["gunicorn"] == "23.0.0", installed
    assert "psycopg2-binary" in installed, installed
    link = lab_exec("app1", "readlink", f"{release}/ihatemoney.cfg").stdout.strip()
    assert link == f"/srv/{APP}/shared/config/ihatemoney.cfg"
    # ihatemoney's API on 7.2.0 created the project (201 with its id in the body).
    status, body = byo["project"]["created"]
    assert status == 201 and PROJECT["id"] in body, (status, body)


def test_7_2_1_went_to_the_idle_slot_under_the_gate_and_lb1_serves_it(byo):
    after = byo["after B"]
    assert after["slot"] != byo["after A"]["slot"] and after["release"].endswith("-7.2.1"), after
    assert after["lb"] == (200, "OK"), after
    # ihatemoney reports no version (app_version_source: none): the run says the gates check health only.
    assert "the gates check health only" in byo["deploy B"]["out"], byo["deploy B"]["out"][-3000:]
    # Each deploy that built a release (a lab left up reuses the release of the same sdist) ran the
    # migration once, through app_commands (Flask-Migrate), and not Django's pair.
    for name in ("deploy A", "deploy B"):
        out = byo[name]["out"]
        if task_hosts(out, "Create the release with its virtualenv"):
            assert task_hosts(out, "ihatemoney db upgrade --directory ihatemoney/migrations") == ["app1"], name
        assert task_hosts(out, "DEPLOY | manage.py") == [], name


def test_the_schema_is_migrated_and_holds_the_project(byo):
    tables = set(app_psql(APP, "select tablename from pg_tables where schemaname = 'public'").split())
    assert {"project", "person", "bill", "alembic_version"} <= tables, tables
    assert app_psql(APP, f"select count(*) from project where id = '{PROJECT['id']}'") == "1"
    heads = app_psql(APP, "select version_num from alembic_version")
    assert heads, "alembic_version is empty"


def test_the_backup_is_verified_and_counts_the_project(byo):
    manifest = json.loads(lab_exec("db1", "cat", f"/var/backups/opsbook/{APP}/latest.json").stdout)
    assert manifest["verification"]["level"] in ("content", "restore"), manifest["verification"]
    projects = int(app_psql(APP, "select count(*) from project"))
    assert manifest["tables"]["public.project"] == projects >= 1, manifest["tables"]
    assert manifest["database"] == APP
    # Taken while 7.2.1's slot was live: the manifest names that slot's release, not "unknown".
    assert manifest["release"] == byo["after B"]["release"], manifest["release"]


def test_the_drill_restored_the_backup_into_a_scratch_database(byo):
    drill = byo["drill"]["out"]
    assert re.search(r"Drill: backup \S+ restored into a scratch database", drill), drill[-3000:]
    # The live database untouched.
    assert app_psql(APP, f"select count(*) from project where id = '{PROJECT['id']}'") == "1"


def test_the_switch_back_serves_7_2_0_again_with_the_data(byo):
    after = byo["after switch"]
    assert after["slot"] == byo["after A"]["slot"] and after["release"] == byo["after A"]["release"], after
    assert after["lb"] == (200, "OK"), after
    # 7.2.1 keeps running in the other slot, for an instant switch forward again.
    assert slot_release(APP, byo["after B"]["slot"]) == byo["after B"]["release"]
    status, body = lb_get(f"/api/projects/{PROJECT['id']}", "-u", f"{PROJECT['id']}:{PROJECT['password']}")
    assert status == 200 and json.loads(body)["name"] == PROJECT["name"], (status, body)


def test_ihatemoney_gets_no_redis(byo):
    """app_redis: false (it uses no Redis): provision ran none of its Redis tasks, on db1 or anywhere (the
    redis-server db1 runs in this lab is the demo's journal's), the environment file names no Redis and no
    Celery broker, and the configuration backup of db1 holds PostgreSQL's configuration and no /etc/redis."""
    out = byo["provision"]["out"]
    assert [task for task in REDIS_TASKS if task in out] == [], out[-3000:]
    for host in ("app1", "app2"):
        names = env_file_names(APP, host)
        assert "DATABASE_PASSWORD" in names and "IHATEMONEY_SETTINGS_FILE_PATH" in names, names
        assert not names & {"REDIS_URL", "RQ_REDIS_URL", "CELERY_BROKER_URL"}, names
    saved = config_archive(APP, "db1")
    assert any(path.startswith("etc/postgresql/") for path in saved), saved
    assert not [path for path in saved if path.startswith("etc/redis")], saved
