"""Issue 20 item 2b: the sample app's Flask sibling (examples/flaskapp, pdfsmall: Flask app factory,
SQLAlchemy on PostgreSQL, Flask-Migrate, a Celery worker on Redis, Gunicorn; the shape of PDF
Smaller, seed 004) deployed by the same roles and playbooks as the journal, rolling, behind HAProxy.

The app's git repository (tags v1, v2) and its wheelhouse are built on this machine by
examples/flaskapp/build-repo.sh and build-wheelhouse.sh (commit ids fixed, every wheel pinned), then,
on the lab beside the demo's journal (inventories/lab_flask: Gunicorn on port 5000 of app1 and app2,
HAProxy on lb1 port 8084 while nginx keeps serving journal on 80), one module-scoped run of four
playbooks: provision, deploy.yml v1, deploy.yml v2 under a constant load through HAProxy
(tests/lab/loadgen.py, 50 requests/s; each app host out of HAProxy through its admin socket and
back), and deploy.yml v2 again. Between them, without a playbook: a compression job created through
HAProxy and finished by a Celery worker, once on v1 and once on v2. The tests read what each left.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from lab_helpers import OUTPUT, ROOT, PlaybookRuns, app_psql, lab_exec, lb_address, task_hosts
from loadgen import LoadGenerator

pytestmark = pytest.mark.lab

INVENTORY = "inventories/lab_flask"
APP = "pdfsmall"
LB_PORT = 8084
CACHE = os.environ.get("OPSBOOK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "opsbook")
EXAMPLE = ROOT / "examples" / "flaskapp"


def through_haproxy(path: str, body: dict | None = None) -> tuple[int, dict]:
    """GET (or POST body as JSON) path through lb1's HAProxy; the status and the JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://{lb_address()}:{LB_PORT}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def current_release(host: str) -> str:
    return lab_exec(host, "readlink", f"/srv/{APP}/current").stdout.strip().removeprefix("releases/")


def served() -> dict:
    """Each app host's current release and what HAProxy answers on /health."""
    status, health = through_haproxy("/health")
    return {"app1": current_release("app1"), "app2": current_release("app2"), "status": status, "health": health}


def job_round_trip(filename: str, size: int) -> dict:
    """A compression job created through HAProxy, read back through it until a worker finished it."""
    status, job = through_haproxy("/api/jobs", {"filename": filename, "size": size})
    assert status == 202, (status, job)
    deadline = time.monotonic() + 60
    while job.get("status") != "done" and time.monotonic() < deadline:
        time.sleep(0.5)
        _, job = through_haproxy(f"/api/jobs/{job['id']}")
    return job


def forget_pdfsmall() -> None:
    """pdfsmall's releases, units' state, database and deploy record gone from the lab (nothing of
    journal's): the test's own app, so the next provision and deploy start from nothing."""
    for host in ("app1", "app2"):
        lab_exec(host, "systemctl", "stop", f"{APP}.socket", f"{APP}.service", f"{APP}-worker.service", check=False)
        lab_exec(host, "rm", "-rf", f"/srv/{APP}")
        lab_exec(
            host, "python3", "-c",
            "import json, pathlib; p = pathlib.Path('/etc/ansible/facts.d/opsbook_deploy.fact');"
            f" d = json.loads(p.read_text()) if p.exists() else {{}}; d.pop('{APP}', None);"
            " p.exists() and p.write_text(json.dumps(d, indent=4, sort_keys=True))",
        )  # fmt: skip
    lab_exec("db1", "runuser", "-u", "postgres", "--", "dropdb", "--if-exists", APP)


@pytest.fixture(scope="module")
def flask_lab(lab):
    """Every playbook run of the module, in order, each with its wall time; the log in tests/output."""
    book = PlaybookRuns("flask-haproxy", INVENTORY)
    runs, run = book.runs, book.run
    rate = float(os.environ.get("LOAD_RATE", "50"))
    # A lab left up by an earlier run holds v2's schema, which v1's `flask db upgrade` cannot read
    # (Alembic: "Can't locate revision"): pdfsmall starts from nothing, as on a new lab.
    forget_pdfsmall()
    t0 = time.monotonic()
    OUTPUT.mkdir(exist_ok=True)
    subprocess.run([EXAMPLE / "build-repo.sh", os.path.join(CACHE, "pdfsmall.git")], check=True, capture_output=True)
    wheelhouse_env = {**os.environ, "PYTHON": sys.executable}  # pip of the venv running the tests
    subprocess.run(
        [EXAMPLE / "build-wheelhouse.sh", os.path.join(CACHE, "pdfsmall-wheelhouse")],
        check=True, capture_output=True, timeout=900, env=wheelhouse_env,
    )  # fmt: skip
    runs["artifacts"] = {"s": round(time.monotonic() - t0)}
    since = f"@{int(time.time())}"
    try:
        run("provision", "provision.yml")
        run("deploy v1", "deploy.yml", "-e", "deploy_ref=v1")
        runs["after v1"] = served()
        runs["job v1"] = job_round_trip("v1.pdf", 1000)
        load = LoadGenerator(f"http://{lb_address()}:{LB_PORT}/version", threads=4, rate=rate).start()
        try:
            run("deploy v2", "deploy.yml", "-e", "deploy_ref=v2")
        finally:
            runs["deploy v2"]["load"] = load.stop()
            book.log.write(f"==== deploy v2: requests through HAProxy: {json.dumps(runs['deploy v2']['load'])}\n")
        runs["after v2"] = served()
        runs["job v2"] = job_round_trip("v2.pdf", 5000)
        runs["workers"] = {
            "log": "".join(
                lab_exec(host, "journalctl", "-q", "--no-pager", "--since", since, "-u", f"{APP}-worker.service").stdout
                for host in ("app1", "app2")
            )
        }
        run("re-run", "deploy.yml", "-e", "deploy_ref=v2")
        runs["haproxy"] = {
            "active": lab_exec("lb1", "systemctl", "is-active", "haproxy.service", check=False).stdout.strip(),
            "config": lab_exec("lb1", "cat", "/etc/haproxy/haproxy.cfg").stdout,
            # Operational state 2 (running) and administrative state 0 (enabled): both back in.
            "servers": lab_exec(
                "lb1", "sh", "-c", f"echo 'show servers state {APP}_app' | socat stdio /run/haproxy/admin.sock"
            ).stdout,
            "nginx": lab_exec(
                "lb1",
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                "http://127.0.0.1/health/",
            ).stdout,  # fmt: skip
        }
        yield runs
    finally:
        print(f"test_flask_haproxy wall time: {book.close()}")
        # The lab's later tests walk journal only: pdfsmall's processes and HAProxy stopped.
        for host in ("app1", "app2"):
            lab_exec(host, "systemctl", "stop", f"{APP}.socket", f"{APP}*.service", check=False)
        lab_exec("lb1", "systemctl", "stop", "haproxy.service", check=False)


def test_v1_was_deployed_rolling_and_haproxy_serves_it(flask_lab):
    after = flask_lab["after v1"]
    assert after["app1"] == after["app2"] and after["app1"].endswith("-v1"), after
    assert after["status"] == 200, after
    # The health rule of the inventory (app_health_expect) and the version the gates read (json:version).
    assert after["health"]["status"] == "healthy" and after["health"]["version"] == after["app1"], after
    assert after["health"]["checks"] == {"database": "ok", "redis": "ok"}, after


def test_flask_db_upgrade_ran_once_per_new_release_before_the_switch(flask_lab):
    """app_commands: Flask-Migrate's upgrade on app1 only, for v1 and for v2; none in the re-run."""
    for name in ("deploy v1", "deploy v2"):
        out = flask_lab[name]["out"]
        assert task_hosts(out, "DEPLOY | flask db upgrade") == ["app1"], out[-3000:]
        assert out.count("TASK [opsbook.webstack.deploy : DEPLOY | flask db upgrade]") == 1, name
        # Before the switch: the command's task comes before the first activation.
        assert out.index("DEPLOY | flask db upgrade") < out.index("DEPLOY | Switch, restart and gate"), name
    assert "DEPLOY | flask db upgrade" not in flask_lab["re-run"]["out"]
    # Alembic's record and the schema: v2's migration applied, its column there.
    assert app_psql(APP, "select version_num from alembic_version") == "0002_job_processed_by"
    columns = app_psql(APP, "select column_name from information_schema.columns where table_name = 'jobs'").split()
    assert "processed_by" in columns, columns


def test_v2_under_load_through_haproxy_with_no_failed_request(flask_lab):
    after, before = flask_lab["after v2"], flask_lab["after v1"]
    assert after["app1"] == after["app2"] and after["app1"].endswith("-v2"), after
    assert after["status"] == 200 and after["health"]["version"] == after["app1"], after
    load = flask_lab["deploy v2"]["load"]
    assert load["failed"] == 0 and load["ok"] >= 100, load
    # The load saw the old release, then the new one: the rolling switch happened while it ran.
    assert load["versions"].get(before["app1"], 0) > 0 and load["versions"].get(after["app1"], 0) > 0, load
    # Each app host was taken out of HAProxy (its admin socket) and back in, one at a time.
    out = flask_lab["deploy v2"]["out"]
    sections = [
        task for task in out.split("TASK [") if task.startswith("opsbook.webstack.deploy : DEPLOY | Set the HAProxy")
    ]
    assert len(sections) == 4, out[-3000:]


def test_a_celery_task_went_round_trip_through_the_v2_workers(flask_lab):
    """A job created through HAProxy is finished by a worker: on v1 (no processed_by column then), and
    on v2, whose worker records its release in the column v2's migration added."""
    v1, v2 = flask_lab["job v1"], flask_lab["job v2"]
    assert v1["status"] == "done" and v1["compressed_size"] == 400 and "processed_by" not in v1, v1
    assert v2["status"] == "done" and v2["compressed_size"] == 2000, v2
    assert v2["processed_by"] == flask_lab["after v2"]["app1"], v2
    # The workers' own record: both tasks succeeded there, and no other app's task reached their
    # queue (two Celery apps on one Redis database take, and discard, each other's).
    log = flask_lab["workers"]["log"]
    assert len(re.findall(r"Task pdfsmall\.compress\[[0-9a-f-]+\] succeeded", log)) == 2, log[-3000:]
    assert "Received unregistered task" not in log, log[-3000:]
    # The same rows in PostgreSQL; v1's job, finished before the migration, has no processed_by.
    rows = app_psql(
        APP, f"select status, coalesce(processed_by, '-') from jobs where id in ({v1['id']}, {v2['id']}) order by id"
    )
    assert rows.splitlines() == ["done|-", f"done|{v2['processed_by']}"], rows


def test_a_re_run_of_v2_changes_nothing(flask_lab):
    recap = flask_lab["re-run"]["recap"]
    assert recap and all(changed == 0 for changed in recap.values()), recap
    assert "Create the release with its virtualenv" not in flask_lab["re-run"]["out"]
    assert current_release("app1") == flask_lab["after v2"]["app1"]


def test_haproxy_serves_pdfsmall_on_lb1_beside_nginx_serving_journal(flask_lab):
    """HAProxy's configuration is this app's frontend on 8084 and its backend of app1 and app2 on port
    5000; both servers are enabled and up after the deploys; nginx still answers journal on 80."""
    haproxy = flask_lab["haproxy"]
    assert haproxy["active"] == "active", haproxy
    assert "bind *:8084" in haproxy["config"], haproxy["config"]
    # show servers state: a format version line, a header, then per server be_id be_name srv_id
    # srv_name srv_addr srv_op_state srv_admin_state ...
    servers = [line.split() for line in haproxy["servers"].splitlines() if len(line.split()) > 6 and line[0].isdigit()]
    assert sorted((s[3], s[5], s[6]) for s in servers) == [("app1", "2", "0"), ("app2", "2", "0")], haproxy["servers"]
    assert haproxy["nginx"] == "200", haproxy
