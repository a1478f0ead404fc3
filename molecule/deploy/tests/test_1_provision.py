"""What provision promises, checked on the scenario's hosts after converge and idempotence, before any release.

The first file of the `deploy` scenario (until 2026-12-07 a scenario of its own, `provision`):
converge only provisions; tests/test_2_deploy.py deploys v1 after these tests. md-lb2 (nginx),
md-app2 and md-db1 started from the bare systemd image, so their packages came from provision's
apt tasks; md-lb1 (HAProxy) and md-app1 from the stack image (installed and disabled).
"""

import datetime
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import testinfra
import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
SCENARIO_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = SCENARIO_DIR.parents[1]


# Started from the bare systemd image (molecule.yml): what they run, provision installed.
BARE_HOSTS = ("md-lb2", "md-app2", "md-db1")


def host_for(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def in_group(group: str) -> list[str]:
    return RUNNER.get_hosts(group)


# What the bare hosts got from provision's apt tasks (none of it is in the systemd image).
BARE_PACKAGES = {
    "md-lb2": ["nginx"],
    "md-app2": ["python3-venv", "python3-pip", "git", "libpq5", "postgresql-client", "acl", "python3.11-venv"],
    "md-db1": ["postgresql-15", "postgresql-client-15", "python3-psycopg2", "redis-server"],
}


@pytest.mark.parametrize("name", BARE_HOSTS)
def test_bare_hosts_got_their_packages_from_provision(name):
    image = subprocess.run(
        ["docker", "inspect", "-f", "{{.Config.Image}}", name], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert image == "opsbook/systemd:bookworm", (name, image)
    host = host_for(name)
    missing = [package for package in BARE_PACKAGES[name] if not host.package(package).is_installed]
    assert missing == [], (name, missing)


@pytest.mark.parametrize("name", in_group("db"))
def test_postgresql_runs_enabled_and_listens(name):
    host = host_for(name)
    service = host.service("postgresql@15-main")
    assert service.is_running
    assert service.is_enabled
    assert host.socket("tcp://0.0.0.0:5432").is_listening


@pytest.mark.parametrize("name", in_group("broker"))
def test_redis_runs_and_requires_its_password(name):
    host = host_for(name)
    assert host.service("redis-server").is_running
    assert host.socket("tcp://0.0.0.0:6379").is_listening
    unauthenticated = host.run("redis-cli -h 127.0.0.1 PING")
    assert "NOAUTH" in unauthenticated.stdout + unauthenticated.stderr


@pytest.mark.parametrize("name", in_group("app"))
def test_app_role_reaches_its_database_over_tcp(name):
    host = host_for(name)
    v = host.ansible.get_variables()
    db_host = in_group("db")[0]
    line = f"{db_host}:5432:{v['app_db_name']}:{v['app_db_user']}:{v['vault_app_db_password']}\n"
    # The password travels on stdin into a 0600 file: never in a command line or test output.
    subprocess.run(
        ["docker", "exec", "-i", name, "sh", "-c", "umask 077; cat > /root/.pgpass-opsbook-test"],
        input=line.encode(),
        check=True,
    )
    try:
        result = host.run(
            "PGPASSFILE=/root/.pgpass-opsbook-test psql -h %s -U %s -d %s -tAc %s",
            db_host,
            v["app_db_user"],
            v["app_db_name"],
            "select current_user || '|' || current_database()",
        )
    finally:
        host.run("rm -f /root/.pgpass-opsbook-test")
    assert result.rc == 0, f"the app role could not log in to its database: {result.stderr}"
    assert result.stdout.strip() == f"{v['app_db_user']}|{v['app_db_name']}"


@pytest.mark.parametrize("name", sorted(set(in_group("app") + in_group("worker") + in_group("scheduler"))))
def test_app_user_directories_and_units(name):
    host = host_for(name)
    v = host.ansible.get_variables()
    user = host.user(v["app_user"])
    assert user.exists
    assert user.shell == "/usr/sbin/nologin"
    root = v["app_root"]
    assert host.file(root).user == "root"
    for sub in ("releases", "shared", "shared/media", "shared/logs"):
        assert host.file(f"{root}/{sub}").is_directory
        assert host.file(f"{root}/{sub}").user == v["app_user"]
    assert oct(host.file(f"{root}/shared").mode) == "0o750"
    expected = []
    if name in in_group("app"):
        expected.append(f"{v['app_name']}.service")
    if name in in_group("worker"):
        expected += [f"{v['app_name']}-{w['name']}.service" for w in v["app_workers"] if w["kind"] == "celery"]
    if name in in_group("scheduler"):
        expected += [f"{v['app_name']}-{w['name']}.service" for w in v["app_workers"] if w["kind"] == "celery-beat"]
    assert expected
    for unit in expected:
        assert host.service(unit).is_enabled, unit
        # Not started before a release exists: the unit's condition holds it back, it does not fail.
        assert not host.service(unit).is_running, unit
        assert host.run("systemctl is-failed %s", unit).stdout.strip() != "failed", unit


@pytest.mark.parametrize("name", in_group("lb"))
def test_load_balancer_answers_and_proxies_to_the_app_hosts(name):
    host = host_for(name)
    software = host.ansible.get_variables().get("provision_lb_software", "nginx")
    other = "haproxy" if software == "nginx" else "nginx"
    assert host.service(software).is_running
    # The stack image has both installed (and disabled); only the configured one is started.
    assert not host.service(other).is_running and not host.service(other).is_enabled
    if name in BARE_HOSTS:
        assert not host.package(other).is_installed
    assert host.socket("tcp://0.0.0.0:80").is_listening
    # No release is deployed, so the load balancer answers for the app with a gateway error.
    code = host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/health/")
    assert code in {"502", "503"}, code
    if software == "nginx":
        assert host.run("nginx -t").rc == 0
        upstream = host.file("/etc/nginx/opsbook/journal-upstream.conf").content_string
    else:
        assert host.run("haproxy -c -f /etc/haproxy/haproxy.cfg").rc == 0
        upstream = host.file("/etc/haproxy/haproxy.cfg").content_string
    for app_host in in_group("app"):
        assert re.search(rf"\b{re.escape(app_host)}:8000\b", upstream), app_host


def playbook(path: Path, *extra: str) -> dict[str, int]:
    """ansible-playbook on the scenario's hosts; asserts success, returns changed= per host from the recap."""
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": f"{PROJECT_DIR}/playbooks/collections",
        "ANSIBLE_ROLES_PATH": f"{PROJECT_DIR}/roles",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    result = subprocess.run(
        ["ansible-playbook", "-i", INVENTORY, str(path), *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=SCENARIO_DIR,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", result.stdout, re.MULTILINE)
    assert recap, result.stdout[-3000:]
    return {host: int(changed) for host, changed in recap}


def test_check_mode_after_provision_reports_no_change():
    """Check mode tells the truth: on provisioned hosts it predicts no change."""
    recap = playbook(SCENARIO_DIR / "converge.yml", "--check")
    assert recap == {host: 0 for host in recap}


def maintenance(state: str) -> dict[str, int]:
    return playbook(PROJECT_DIR / "playbooks" / "maintenance.yml", "-e", f"maintenance_page={state}")


def test_maintenance_page_on_nginx_and_haproxy():
    """On: users get 503, Retry-After and the page; /health/ is exempt; a second on changes nothing; off."""
    lbs = in_group("lb")
    assert sorted(lbs) == ["md-lb1", "md-lb2"]
    try:
        changed = maintenance("on")
        # nginx: the flag file; HAProxy: the map file and the running process.
        assert all(changed[h] > 0 for h in lbs), changed
        for name in lbs:
            host = host_for(name)
            response = host.run("curl -s -i --max-time 5 http://127.0.0.1/articles/")
            assert response.stdout.startswith("HTTP/1.1 503"), (name, response.stdout[:300])
            assert "Down for maintenance" in response.stdout
            assert "retry-after: 300" in response.stdout.lower()
            # No app is deployed in this scenario: /health/ reaches the (absent) backend, not the page.
            assert "Down for maintenance" not in host.run("curl -s --max-time 5 http://127.0.0.1/health/").stdout
        again = maintenance("on")
        assert {h: again[h] for h in lbs} == {h: 0 for h in lbs}
    finally:
        maintenance("off")
    for name in lbs:
        assert (
            "Down for maintenance" not in host_for(name).run("curl -s --max-time 5 http://127.0.0.1/articles/").stdout
        )


# --------------------------------------------------------------------------- RQ (issue 20, item 2)
# group_vars/all/rq.yml: `rq` (count 2: journal-rq-1, journal-rq-2; queues default, emails) and
# `rq-low` (queues low and default, rq.worker.SimpleWorker) on the worker hosts, the RQ scheduler
# on the scheduler host (every RQ queue). Provision leaves them enabled, not running (no release
# yet); the `rq_release` fixture gives md-app1's a minimal release (a virtualenv with RQ from the
# lab's wheelhouse, one job module) so that they start, register in Redis and drain on restart,
# and takes it away again before the deploy tests.
RQ_HOST = "md-app1"  # worker and scheduler (Redis is on md-db1)
RQ_UNITS = {
    "journal-rq-1.service": ("rq-1", ["default", "emails"]),
    "journal-rq-2.service": ("rq-2", ["default", "emails"]),
    "journal-rq-low.service": ("rq-low", ["low", "default"]),
    "journal-rq-scheduler.service": ("rq-scheduler", ["default", "emails", "low"]),
}
RQ_WHEELS = ("rq-", "redis-", "click-", "croniter-", "python_dateutil-", "six-", "async_timeout-")
RQ_JOBS = """
import time


def sleep(seconds):
    started = time.time()
    time.sleep(seconds)
    return {"started": started, "ended": time.time()}
"""
RQ_PROBE = """
import json, os, sys, time
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry
redis = Redis.from_url(os.environ["RQ_REDIS_URL"])
if sys.argv[1] == "workers":
    out = {w.name: {"state": w.get_state(), "queues": w.queue_names()} for w in Worker.all(connection=redis)}
elif sys.argv[1] == "enqueue":  # one job on queue argv[2], sleeping argv[3] s; returns once a worker runs it
    job = Queue(sys.argv[2], connection=redis).enqueue("rqprobe.sleep", float(sys.argv[3]))
    deadline = time.monotonic() + 30
    while job.get_status(refresh=True) != "started" and time.monotonic() < deadline:
        time.sleep(0.1)
    job.refresh()
    out = {"id": job.id, "status": job.get_status(), "worker": job.worker_name}
else:
    job = Job.fetch(sys.argv[2], connection=redis)
    out = {"status": job.get_status(), "result": job.return_value(),
           "failed": FailedJobRegistry(sys.argv[3], connection=redis).get_job_ids()}
print(json.dumps(out))
"""


def rq_probe(host, *args: str) -> dict:
    """RQ_PROBE with the release's Python and RQ_REDIS_URL from the env file (not in argv)."""
    command = 'set -a; . /srv/journal/shared/env; set +a; exec /srv/journal/current/venv/bin/python -c "$0" "$@"'
    out = host.run("sh -ec %s %s " + " ".join(["%s"] * len(args)), command, RQ_PROBE, *args)
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def active_since(host, unit: str) -> float:
    """When unit's running process started (unix time, microseconds)."""
    out = host.run("systemctl show -P ActiveEnterTimestamp --timestamp=us+utc %s", unit).stdout.strip()
    return datetime.datetime.strptime(out, "%a %Y-%m-%d %H:%M:%S.%f %Z").replace(tzinfo=datetime.UTC).timestamp()


def test_rq_units_written_enabled_and_waiting_for_a_release():
    host = host_for(RQ_HOST)
    for unit, (name, queues) in RQ_UNITS.items():
        text = host.file(f"/etc/systemd/system/{unit}").content_string
        assert host.service(unit).is_enabled, unit
        assert not host.service(unit).is_running, unit  # no release yet: the condition holds it back
        assert host.run("systemctl is-failed %s", unit).stdout.strip() != "failed", unit
        exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", text, re.MULTILINE | re.DOTALL).group(1)
        words = exec_start.replace("\\\n", " ").split()
        assert words[:2] == ["/srv/journal/current/venv/bin/rq", "worker"], words
        assert words[words.index("--name") + 1] == f"{name}@%H" and words[-len(queues) :] == queues, words
        assert ("--with-scheduler" in words) is (name == "rq-scheduler"), words
        assert ("--worker-class" in words) is (name == "rq-low"), words
        # Warm shutdown: SIGTERM to `rq worker` alone (its work horse keeps running the job).
        for line in (
            "KillSignal=SIGTERM",
            "KillMode=mixed",
            "TimeoutStopSec=300",
            "EnvironmentFile=/srv/journal/shared/env",
        ):
            assert line in text.splitlines(), (unit, line)
        assert "redis://" not in text and "--url" not in words, unit  # the URL is in the env file only
    # Only the scheduler host has the scheduler; the other worker host has the RQ workers alone.
    other = host_for("md-app2")
    assert "md-app2" in in_group("worker") and "md-app2" not in in_group("scheduler")
    assert other.file("/etc/systemd/system/journal-rq-1.service").exists
    assert not other.file("/etc/systemd/system/journal-rq-scheduler.service").exists


@pytest.fixture(scope="module")
def rq_release():
    """A minimal release at /srv/journal/current for the RQ units; removed afterwards."""
    host = host_for(RQ_HOST)
    v = host.ansible.get_variables()
    wheelhouse = Path.home() / ".cache" / "opsbook" / "wheelhouse"
    wheels = [p for p in wheelhouse.glob("*.whl") if p.name.startswith(RQ_WHEELS)]
    assert any(p.name.startswith("rq-") for p in wheels), f"no RQ wheel in {wheelhouse}"
    release = "/srv/journal/releases/rqprobe"
    assert host.run("mkdir -p /tmp/rqwheels %s", release).rc == 0
    for wheel in wheels:
        subprocess.run(["docker", "cp", str(wheel), f"{RQ_HOST}:/tmp/rqwheels/"], check=True, capture_output=True)
    setup = host.run(
        "python3 -m venv %s/venv && %s/venv/bin/pip install -q --no-index --find-links /tmp/rqwheels rq"
        " && printf %%s %s > %s/rqprobe.py && chown -R journal:journal %s"
        " && ln -sfn releases/rqprobe /srv/journal/current",
        release, release, RQ_JOBS, release, release,
    )  # fmt: skip
    assert setup.rc == 0, setup.stderr
    url = f"redis://:{v['vault_app_redis_password']}@{in_group('broker')[0]}:6379/0"
    # The password goes in on stdin into the 0600 env file: never in a command line.
    subprocess.run(
        ["docker", "exec", "-i", RQ_HOST, "sh", "-c", "umask 077; cat > /srv/journal/shared/env"],
        input=f'RQ_REDIS_URL="{url}"\n'.encode(),
        check=True,
    )
    units = " ".join(["%s"] * len(RQ_UNITS))
    started = host.run(f"systemctl start {units}", *RQ_UNITS)
    assert started.rc == 0, started.stderr
    yield host
    # As before the fixture: no release and no env file (the deploy tests' v1 is the first deploy).
    stopped = host.run(f"systemctl stop {units}", *RQ_UNITS)
    assert stopped.rc == 0, stopped.stderr
    cleaned = host.run("rm -rf /srv/journal/current %s /srv/journal/shared/env /tmp/rqwheels", release)
    assert cleaned.rc == 0, cleaned.stderr


def test_rq_workers_run_and_register_in_redis(rq_release):
    host = rq_release
    deadline = time.monotonic() + 60
    while True:
        workers = rq_probe(host, "workers")
        # Registered and idle: a worker reports "started" for a moment before its first "idle".
        names = {f"{name}@{RQ_HOST}" for name, _ in RQ_UNITS.values()}
        if names <= workers.keys() and all(workers[n]["state"] == "idle" for n in names):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    for unit, (name, queues) in RQ_UNITS.items():
        assert host.service(unit).is_running, unit
        assert workers[f"{name}@{RQ_HOST}"]["queues"] == queues, workers
        assert workers[f"{name}@{RQ_HOST}"]["state"] == "idle", workers
    low = host.run("systemctl show -P MainPID journal-rq-low.service").stdout.strip()
    assert "\0--worker-class\0rq.worker.SimpleWorker\0" in host.file(f"/proc/{low}/cmdline").content_string
    # The worker runs as the app user, and no secret is in its command line.
    pid = host.run("systemctl show -P MainPID journal-rq-1.service").stdout.strip()
    assert host.run("stat -c %%U /proc/%s", pid).stdout.strip() == "journal"
    assert "redis://" not in host.run("cat /proc/%s/cmdline", pid).stdout


@pytest.mark.parametrize("queue", ["emails", "low"])  # a forking worker, then SimpleWorker (no work horse)
def test_a_restarted_rq_worker_finishes_its_running_job_first(rq_release, queue):
    host = rq_release
    job = rq_probe(host, "enqueue", queue, "6")
    assert job["status"] == "started", job
    unit = f"journal-{job['worker'].split('@')[0]}.service"
    started = time.monotonic()
    assert host.run("systemctl restart %s", unit).rc == 0  # as the deploy restarts it
    waited = time.monotonic() - started
    done = rq_probe(host, "result", job["id"], queue)
    assert done["status"] == "finished" and done["failed"] == [], done
    # The restart returned only once the job was done: its new process started after.
    assert waited > 3, waited
    new_start = active_since(host, unit)
    assert new_start >= done["result"]["ended"] - 0.5, (new_start, done)
    assert host.service(unit).is_running


def unit_mtimes(host) -> dict[str, str]:
    out = host.run("stat -c '%n %.9Y' /etc/systemd/system/journal*.service /etc/systemd/system/journal*.socket")
    return dict(line.rsplit(" ", 1) for line in out.stdout.splitlines())


def test_provision_stops_and_removes_rq_units_no_longer_declared(rq_release):
    """A unit left from a higher count (journal-rq-3) is stopped, disabled and removed; the rest stay.

    Unit files are written only when they differ from their templates: a unit edited by hand
    is put back, one disabled by hand is enabled again, and no other unit file is rewritten.
    Both runs are limited to the RQ host: the units are its own, and every host's second run
    changing nothing is the scenario's idempotence step.
    """
    host = rq_release
    made = host.run(
        "sed 's/rq-2/rq-3/g' /etc/systemd/system/journal-rq-2.service > /etc/systemd/system/journal-rq-3.service"
        " && systemctl daemon-reload && systemctl enable --now journal-rq-3.service"
        " && echo '# edited by hand' >> /etc/systemd/system/journal-rq-1.service"
        " && systemctl disable journal-rq-low.service"
    )
    assert made.rc == 0, made.stderr
    assert host.service("journal-rq-3.service").is_running
    before = unit_mtimes(host)
    changed = playbook(SCENARIO_DIR / "converge.yml", "--limit", RQ_HOST)
    assert set(changed) == {RQ_HOST} and changed[RQ_HOST] > 0, changed
    assert not host.file("/etc/systemd/system/journal-rq-3.service").exists
    assert "edited by hand" not in host.file("/etc/systemd/system/journal-rq-1.service").content_string
    assert host.service("journal-rq-low.service").is_enabled
    after = unit_mtimes(host)
    rewritten = sorted(path for path, mtime in after.items() if before.get(path) != mtime)
    assert rewritten == ["/etc/systemd/system/journal-rq-1.service"], (before, after)
    assert host.run("systemctl is-active journal-rq-3.service").stdout.strip() in ("inactive", "unknown")
    assert not host.file("/etc/systemd/system/multi-user.target.wants/journal-rq-3.service").exists
    assert f"rq-3@{RQ_HOST}" not in rq_probe(host, "workers")  # its warm shutdown unregistered it
    for unit in RQ_UNITS:
        assert host.service(unit).is_running, unit
    again = playbook(SCENARIO_DIR / "converge.yml", "--limit", RQ_HOST)
    assert again == {RQ_HOST: 0}, again
