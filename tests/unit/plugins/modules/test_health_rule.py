"""What "healthy" means (issue 25; issue 22 item 4): the one rule of module_utils/health.py, judged
on the answers of a real Gunicorn serving an app whose health endpoint is not opsbook's JSON shape
(a `state` field, its version in a header or nowhere, a plain 200), through the deploy gate
(deploy_activate's health step) and through ansible-playbook's uri + health_judge (the restore's
gate and health.yml's checks), with app_health_expect and app_version_source."""

from __future__ import annotations

import json
import subprocess

import pytest
from module_runner import run_module

import helpers

# Not opsbook's shape: /healthz says {"state": ..., "checks": {...}} and gives its version only in a
# header (read from a file at every request, so a test can "deploy" another one); /plain says OK.
APP = """
import json
from pathlib import Path

HERE = Path(__file__).parent


def application(environ, start_response):
    path = environ["PATH_INFO"]
    version = (HERE / "VERSION").read_text().strip()
    state = (HERE / "STATE").read_text().strip()
    if path == "/plain":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"OK"]
    if path == "/healthz":
        body = json.dumps({"state": state, "checks": {"db": "up"}, "components": {"db": "up"}}).encode()
        code = "200 OK" if state != "down" else "500 Internal Server Error"
        start_response(code, [("Content-Type", "application/json"), ("X-App-Version", version)])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no"]
"""


@pytest.fixture(scope="module")
def app(webapp_venv, tmp_path_factory):
    """A real Gunicorn (the sample app's virtualenv) serving APP; yields (base URL, app directory)."""
    work = tmp_path_factory.mktemp("health-rule")
    (work / "healthapp.py").write_text(APP)
    (work / "VERSION").write_text("r1\n")
    (work / "STATE").write_text("healthy\n")
    port = helpers.free_port()
    proc = helpers.ManagedProcess(
        [
            str(webapp_venv / "bin" / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "healthapp:application",
        ],
        log_path=work / "gunicorn.log",
        cwd=work,
        name="gunicorn-health-rule",
    ).start()
    base = f"http://127.0.0.1:{port}"
    try:
        helpers.wait_for_http(f"{base}/plain", timeout=30, process=proc)
        yield base, work
    finally:
        proc.stop()


@pytest.fixture
def served(app):
    base, work = app
    yield base, work
    (work / "VERSION").write_text("r1\n")
    (work / "STATE").write_text("healthy\n")


EXPECT_STATE = {"status": 200, "json_path": "state", "json_value": "healthy", "components": False}


def gate(url, release, timeout=1.0, **extra):
    return run_module(
        "deploy_activate",
        {"steps": ["health"], "health_url": url, "health_release": release, "health_timeout": timeout, **extra},
    )


def test_gate_passes_a_json_state_and_a_header_version(served):
    base, _work = served
    result = gate(f"{base}/healthz", "r1", health_expect=EXPECT_STATE, health_version_source="header:X-App-Version")
    assert not result.failed, result.data
    assert result["health"]["version"] == "r1"
    assert (
        result["health"]["version_statement"]
        == "the served release is read from the response header X-App-Version of the health answer"
    )


def test_gate_fails_the_wrong_state_and_the_wrong_version_naming_them(served):
    base, work = served
    (work / "STATE").write_text("degraded\n")
    result = gate(f"{base}/healthz", "r1", health_expect=EXPECT_STATE, health_version_source="header:X-App-Version")
    assert result.failed and result["step"] == "health"
    assert "JSON state is 'degraded', expected 'healthy'" in result.msg
    (work / "STATE").write_text("healthy\n")
    (work / "VERSION").write_text("r0\n")
    result = gate(f"{base}/healthz", "r1", health_expect=EXPECT_STATE, health_version_source="header:X-App-Version")
    assert result.failed
    assert "header X-App-Version is r0, expected r1" in result.msg


def test_the_default_rule_reads_opsbooks_shape(served):
    # components {"db": "up"}: by opsbook's rule (every component "ok") this app is not healthy,
    # and its version is not in a JSON `version`: the default fails it, saying both.
    base, _work = served
    result = gate(f"{base}/healthz", "r1")
    assert result.failed
    assert "components not ok: db" in result.msg and "JSON version is missing, expected r1" in result.msg


def test_plain_200_with_no_version_source_checks_health_only_and_says_so(served):
    base, work = served
    (work / "VERSION").write_text("r0\n")  # not read: the source is none
    result = gate(f"{base}/plain", "r1", health_version_source="none")
    assert not result.failed, result.data
    assert result["health"]["version_statement"].startswith("app_version_source is none: the app reports no version")
    # The status still counts: a 404 is not healthy.
    result = gate(f"{base}/missing", "r1", health_version_source="none")
    assert result.failed and "HTTP 404, expected 200" in result.msg


def test_a_file_source_is_read_from_the_release_the_web_process_runs(served):
    # The host's own gate (with its web unit): the file in the working directory of the process
    # listening on the health URL's port (Gunicorn's: the app directory here, the release in a deploy).
    base, work = served
    on_host = {"health_version_source": "file:VERSION", "web_unit": "healthapp.service"}
    result = gate(f"{base}/plain", "r1", **on_host)
    assert not result.failed, result.data
    assert result["health"]["version"] == "r1"
    (work / "VERSION").write_text("r0\n")
    result = gate(f"{base}/plain", "r1", **on_host)
    assert result.failed and "file VERSION of the served release is r0, expected r1" in result.msg
    # A gate that sees only HTTP (through a load balancer: no web unit) checks health only, and says so.
    result = gate(f"{base}/plain", "r1", health_version_source="file:VERSION")
    assert not result.failed, result.data
    assert (
        "gates through HTTP alone (the load balancer, restore, health.yml) check health only"
        in (result["health"]["version_statement"])
    )


@pytest.mark.parametrize(
    ("expect", "source", "named"),
    [
        ({"status": "ok"}, "json:version", "health_expect.status"),
        ({"json_path": "state"}, "json:version", "health_expect.json_value"),
        ({"components": "yes"}, "json:version", "health_expect.components"),
        ({"code": 200}, "json:version", "health_expect: unknown field(s) code"),
        ({}, "body:version", "health_version_source"),
        ({}, "file:../etc/passwd", "health_version_source"),
    ],
)
def test_gate_refuses_a_malformed_rule_naming_the_field(served, expect, source, named):
    base, _work = served
    result = gate(f"{base}/plain", "r1", health_expect=expect, health_version_source=source)
    assert result.failed and result.msg.startswith(named), result.msg
    assert result.msg.endswith("nothing was changed")
    assert "health" not in result.data  # refused before asking


PLAYBOOK = """
- name: The restore's and health.yml's rule through uri
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Ask
      ansible.builtin.uri:
        url: "{{ url }}"
        return_content: true
        status_code: "{{ [-1] + range(100, 600) | list }}"
      register: answer
    - name: Judge
      ansible.builtin.debug:
        msg: >-
          {{ answer | opsbook.webstack.health_judge(app_health_expect | default({}),
               app_version_source | default('json:version'), versions) | to_json }}
    - name: Say what the version gate reads
      ansible.builtin.debug:
        msg: "{{ app_version_source | default('json:version') | opsbook.webstack.health_version_statement }}"
"""


def playbook(tmp_path, extra: dict) -> subprocess.CompletedProcess:
    return helpers.playbook_on_localhost(tmp_path, PLAYBOOK, extra)


def messages(out: subprocess.CompletedProcess) -> list:
    assert out.returncode == 0, out.stdout + out.stderr
    return [json.loads("{" + line.strip() + "}")["msg"] for line in out.stdout.splitlines() if '"msg": ' in line]


def test_uri_answers_judged_by_the_same_rule(served, tmp_path):
    base, work = served
    extra = {
        "url": f"{base}/healthz",
        "versions": ["r1"],
        "app_health_expect": EXPECT_STATE,
        "app_version_source": "header:X-App-Version",
    }
    judged, statement = messages(playbook(tmp_path, extra))
    judged = json.loads(judged)
    assert judged["ok"] is True and judged["version"] == "r1", judged
    assert "response header X-App-Version" in statement
    (work / "STATE").write_text("down\n")
    judged = json.loads(messages(playbook(tmp_path, extra))[0])
    assert judged["ok"] is False and judged["status"] == 500
    assert judged["problems"] == ["HTTP 500, expected 200", "JSON state is 'down', expected 'healthy'"]


def test_uri_with_no_version_source_checks_health_only(served, tmp_path):
    base, _work = served
    extra = {"url": f"{base}/plain", "versions": ["r9"], "app_version_source": "none"}
    judged, statement = messages(playbook(tmp_path, extra))
    judged = json.loads(judged)
    assert judged["ok"] is True and judged["version_checked"] is False
    assert statement.startswith("app_version_source is none")


def test_uri_no_answer_is_not_healthy(tmp_path):
    extra = {"url": f"http://127.0.0.1:{helpers.free_port()}/health/", "versions": []}
    judged = json.loads(messages(playbook(tmp_path, extra))[0])
    assert judged["ok"] is False and judged["problems"] == ["no answer"]


def test_a_malformed_expect_fails_the_play_naming_the_variable(served, tmp_path):
    base, _work = served
    out = playbook(tmp_path, {"url": f"{base}/plain", "versions": [], "app_health_expect": {"status": [200, 999]}})
    assert out.returncode != 0
    assert (
        "app_health_expect.status: expected an HTTP status code or a list of them (100-599)" in out.stdout + out.stderr
    )
