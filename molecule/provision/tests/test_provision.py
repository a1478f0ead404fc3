"""What provision promises, checked on the scenario's hosts after converge and idempotence."""

import os
import re
import subprocess
from pathlib import Path

import pytest
import testinfra
import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
SCENARIO_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = SCENARIO_DIR.parents[1]


def host_for(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def in_group(group: str) -> list[str]:
    return RUNNER.get_hosts(group)


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
    assert sorted(lbs) == ["mp-lb1", "mp-lb2"]
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
