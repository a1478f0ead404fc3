"""Celery on RabbitMQ as the roles run it (issue 25): a real RabbitMQ node, real Celery workers.

- the broker URL the roles build (opsbook.webstack.broker_url from app_broker) reaches a user whose
  password holds @ / % : and spaces, on a virtual host whose name holds a slash;
- celery_inspect sees a worker and the queue depth over amqp when the app accepts only pickle
  (and does not, in json: what the accept_content option is for);
- provision's RabbitMQ tasks (roles/provision/tasks/rabbitmq_access.yml) create that virtual host and
  user with the password on stdin: changed once, then nothing; check mode reports a changed password
  and leaves it; no secret in the output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from ansible_collections.opsbook.webstack.plugins.filter.broker_url import broker_url

import helpers

FIXTURES = f"{__package__}.celery_fixtures" if __package__ else "celery_fixtures"
pytest.register_assert_rewrite(FIXTURES)
pytest_plugins = [FIXTURES]

from celery_fixtures import (  # noqa: E402  (after pytest_plugins, which must be module level and first)
    assert_secret_free,
    node,
    run_module,
    send,
    start_celery_worker,
)

ROOT = helpers.REPO_ROOT
BIN = Path(sys.executable).parent
RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"
ODD_PASSWORD = "p@ss/w:rd %41 x"
ODD_VHOST = "journal/prod"
APP_USER = "journal"


def add_user(server, user: str, password: str, vhost: str) -> None:
    """A vhost and a user with every permission on it; the password on rabbitmqctl's stdin."""
    for argv, stdin in (
        (["add_vhost", vhost], None),
        (["add_user", user], password),
        (["set_permissions", "-p", vhost, user, ".*", ".*", ".*"], None),
    ):
        result = subprocess.run(
            [f"{RABBITMQ_BIN}/rabbitmqctl", "-q", "-n", server.node, *argv],
            input=stdin,
            env=server.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"rabbitmqctl {argv[0]}: {result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def odd_broker(rabbitmq_server):
    """app_broker for a user with an odd password on a vhost with a slash, and the URL the roles build."""
    add_user(rabbitmq_server, "odd user", ODD_PASSWORD, ODD_VHOST)
    spec = {
        "kind": "rabbitmq",
        "host": "127.0.0.1",
        "port": rabbitmq_server.port,
        "vhost": ODD_VHOST,
        "user": "odd user",
        "password": ODD_PASSWORD,
    }
    return spec, broker_url(spec, "unused-redis-password", "unused-redis-host")


@pytest.fixture(scope="module")
def pickle_worker(rabbitmq_server, odd_broker, tmp_path_factory):
    """A worker of an app that accepts only pickle, on the odd vhost, consuming q_pickle."""
    _spec, url = odd_broker
    log_dir = tmp_path_factory.mktemp("celery-pickle")
    process = start_celery_worker("pickle", ["celery", "q_pickle"], url, log_dir, accept_content=["pickle"])
    try:
        yield process
    finally:
        process.stop()


def test_odd_password_url_reaches_rabbitmq(odd_broker, rabbitmq_server):
    spec, url = odd_broker
    assert url == (f"amqp://odd%20user:p%40ss%2Fw%3Ard%20%2541%20x@127.0.0.1:{rabbitmq_server.port}/journal%2Fprod")
    from kombu import Connection

    with Connection(url, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.connection.server_properties["product"] == "RabbitMQ"
        assert conn.virtual_host == ODD_VHOST and conn.userid == "odd user" and conn.password == ODD_PASSWORD
    # The password quoted with a character left as it is (what urlencode does with "/") is refused.
    from kombu.exceptions import OperationalError

    wrong = url.replace("p%40ss%2Fw", "p%40ss/w")
    with pytest.raises((OperationalError, OSError, ValueError)), Connection(wrong, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=1)


def test_inspect_speaks_pickle_over_amqp(odd_broker, pickle_worker, rabbitmq_server):
    _spec, url = odd_broker
    worker = node("pickle")
    for number in range(2):
        send(url, "celery_testapp.add", (number, 1), queue="q_pickle_idle", serializer="pickle")
    args = {
        "broker_url": url,
        "destination": [worker],
        "queues": ["q_pickle_idle", "q_pickle"],
        "collect": ["ping", "active", "active_queues"],
        "timeout": 3,
    }
    result = run_module("celery_inspect", {**args, "accept_content": ["pickle"]})
    assert not result.failed, result.msg
    assert result["transport"] == "amqp"
    assert result["worker_names"] == [worker] and result["unknown_workers"] == []
    assert result["workers"][worker]["ping"] == "pong"
    assert result["workers"][worker]["active_queues"] == ["celery", "q_pickle"]
    assert result["queues"]["q_pickle_idle"]["depth"] == 2 and result["queues"]["q_pickle_idle"]["exists"] is True
    assert result["queues"]["q_pickle"]["broker_consumers"] == 1
    assert result["broker"] == f"amqp://odd%20user:********@127.0.0.1:{rabbitmq_server.port}/journal%2Fprod"
    assert_secret_free(result, ODD_PASSWORD, "p%40ss%2Fw%3Ard%20%2541%20x")

    # In json (the default) the same worker refuses the broadcast: it stays unknown, never "idle".
    in_json = run_module("celery_inspect", {**args, "timeout": 1, "min_workers": 1})
    assert in_json.failed
    assert in_json["unknown_workers"] == [worker]


def test_control_drains_and_resumes_a_pickle_worker(odd_broker, pickle_worker):
    _spec, url = odd_broker
    worker = node("pickle")
    common = {"broker_url": url, "destination": [worker], "accept_content": ["pickle"], "timeout": 3}
    try:
        drained = run_module(
            "celery_control", {**common, "action": "drain", "queues": ["q_pickle"], "wait_timeout": 10}
        )
        assert not drained.failed, drained.msg
        assert drained.changed
        after = run_module("celery_inspect", {**common, "collect": ["active_queues"]})
        assert after["workers"][worker]["active_queues"] == ["celery"]
    finally:
        resumed = run_module("celery_control", {**common, "action": "add_consumer", "queues": ["q_pickle"]})
    assert not resumed.failed, resumed.msg
    again = run_module("celery_inspect", {**common, "collect": ["active_queues"]})
    assert again["workers"][worker]["active_queues"] == ["celery", "q_pickle"]


# --------------------------------------------------------------------------- provision


PLAY = """\
- name: Provision's RabbitMQ tasks against a test node
  hosts: localhost
  connection: local
  gather_facts: false
  environment: "{{{{ rabbit_env }}}}"
  vars:
    __provision_broker: >-
      {{{{ app_broker | opsbook.webstack.broker_spec(app_redis_password, app_redis_host) }}}}
  tasks:
    - name: The tasks as provision runs them
      ansible.builtin.import_tasks: {root}/roles/provision/tasks/rabbitmq_access.yml
"""


def provision(tmp: Path, server, password: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    variables = {
        # The test node's rabbitmqctl (not /usr/sbin's wrapper, which runs it as the rabbitmq user
        # with /var/lib/rabbitmq's cookie) and the environment that names the node.
        "rabbit_env": {**server.env, "PATH": f"{RABBITMQ_BIN}:{os.environ['PATH']}"},
        "app_broker": {
            "kind": "rabbitmq",
            "host": "127.0.0.1",
            "port": server.port,
            "vhost": "provisioned/vhost",
            "user": APP_USER,
            "password": password,
        },
        "ansible_python_interpreter": sys.executable,
        "app_redis_password": "unused",
        "app_redis_host": "unused",
        "app_redis_port": 6379,
        "app_redis_db": 0,
    }
    play = tmp / "play.yml"
    play.write_text(PLAY.format(root=ROOT))
    extra_vars = tmp / "vars.json"
    extra_vars.touch(mode=0o600)
    extra_vars.write_text(json.dumps(variables))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}:{env.get('PATH', '')}",
    )
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play), "-e", f"@{extra_vars}", "-v", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    recap = {}
    for line in result.stdout.splitlines():
        if line.startswith("localhost") and "ok=" in line:
            recap = dict(part.split("=") for part in line.split(":", 1)[1].split())
    return result, recap


def authenticates(server, user: str, password: str) -> bool:
    from kombu import Connection

    url = broker_url(
        {"kind": "rabbitmq", "host": "127.0.0.1", "port": server.port, "vhost": "provisioned/vhost", "user": user,
         "password": password}
    )  # fmt: skip
    try:
        with Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
            return True
    except Exception:  # noqa: BLE001  (refused credentials: any transport error means no)
        return False


def test_provision_creates_vhost_and_user_idempotently(rabbitmq_server, tmp_path):
    """Three runs (rabbitmqctl is slow to start: each run reads four times): create; check mode with
    a new password reports that change alone and makes none; the real run makes that one change."""
    first_password, second_password = "first:p@ss/%20 x", "second p@ss"
    first, recap = provision(tmp_path, rabbitmq_server, first_password)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert recap["changed"] == "3", first.stdout[-4000:]  # vhost, user, permissions
    assert authenticates(rabbitmq_server, APP_USER, first_password)

    # The vhost, user and permissions are found as they should be: only the new password is planned.
    checked, recap = provision(tmp_path, rabbitmq_server, second_password, "--check")
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert recap["changed"] == "1", checked.stdout[-4000:]
    assert f'"msg": "would set the password of {APP_USER}"' in checked.stdout, checked.stdout[-4000:]
    assert authenticates(rabbitmq_server, APP_USER, first_password)

    changed, recap = provision(tmp_path, rabbitmq_server, second_password)
    assert changed.returncode == 0 and recap["changed"] == "1", changed.stdout[-4000:]
    assert "Set the RabbitMQ user's password" in changed.stdout
    assert authenticates(rabbitmq_server, APP_USER, second_password)
    assert not authenticates(rabbitmq_server, APP_USER, first_password)

    for run in (first, checked, changed):
        for secret in (first_password, second_password):
            assert secret not in run.stdout + run.stderr
            assert quote(secret, safe="") not in run.stdout + run.stderr
