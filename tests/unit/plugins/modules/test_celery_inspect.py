"""opsbook.webstack.celery_inspect against real Celery workers on a real Redis and a real RabbitMQ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery

import helpers

# The fixtures are a plugin (session fixtures shared by the three module tests), loaded here by name.
FIXTURES = f"{__package__}.celery_fixtures" if __package__ else "celery_fixtures"
pytest.register_assert_rewrite(FIXTURES)
pytest_plugins = [FIXTURES]

from celery_fixtures import (  # noqa: E402  (after pytest_plugins, which must be module level and first)
    COLLECTIONS,
    assert_secret_free,
    node,
    run_module,
    send,
    start_celery_worker,
    wait_until,
)

ALPHA = node("alpha")
BETA = node("beta")


def inspect(broker_url: str, **args):
    return run_module("celery_inspect", {"broker_url": broker_url, **args})


def wait_active(broker_url: str, worker: str, task_id: str) -> dict:
    """Until the worker reports the task as active (it may still be on its way)."""

    def active():
        result = inspect(broker_url, destination=[worker], collect=["active"])
        tasks = result["workers"][worker].get("active") or []
        return next((t for t in tasks if t["id"] == task_id), None)

    return wait_until(active, 15, f"{task_id} active on {worker}")


def test_destination_returns_as_soon_as_workers_answer(celery_workers):
    url = celery_workers.broker.url
    result = inspect(url, destination=[ALPHA, BETA], timeout=5)
    assert not result.failed, result.msg
    assert result["worker_names"] == [ALPHA, BETA]
    assert result["unknown_workers"] == []
    # Every section of both workers, in well under the 5 s timeout: nobody waited for stragglers.
    assert result["elapsed"] < 1.5, result["elapsed"]
    for name in (ALPHA, BETA):
        info = result["workers"][name]
        assert info["status"] == "ok" and info["ping"] == "pong"
        assert info["unanswered"] == []
        assert info["active"] == [] and info["reserved"] == [] and info["scheduled"] == []
        assert info["idle"] is True
        assert "celery_testapp.sleep" in info["registered"]
        assert info["stats"]["pid"] > 0
    assert result["workers"][ALPHA]["active_queues"] == ["celery", "q_alpha"]
    assert result["workers"][BETA]["active_queues"] == ["celery", "q_beta"]
    assert result["idle"] is True
    assert result["queues"]["celery"]["consumers"] == [ALPHA, BETA]
    assert result["queues"]["q_alpha"]["depth"] == 0
    assert result["transport"] == "redis"
    assert not result.changed

    # Without a destination nobody knows how many workers will answer: the ping waits the whole timeout.
    started = time.monotonic()
    everyone = inspect(url, timeout=1, collect=["ping"])
    assert time.monotonic() - started >= 1.0
    assert set(everyone["worker_names"]) >= {ALPHA, BETA}


def test_a_late_reply_does_not_hide_a_worker(celery_workers):
    """A reply to an earlier request (a worker that answered after its timeout) waiting in the reply
    queue must not count as this request's answer: kombu's own collection with limit=1 reads it,
    stops, and reports no reply."""
    from ansible_collections.opsbook.webstack.plugins.module_utils.celery_common import CeleryBroker

    broker = CeleryBroker(celery_workers.broker.url, timeout=2).connect()
    try:
        channel = broker.conn.default_channel
        broker.mailbox.reply_queue(channel).declare()
        broker.mailbox._publish_reply(
            {ALPHA: {"ok": "late"}}, broker.mailbox.reply_exchange.name, broker.mailbox.oid, "an-old-ticket", channel
        )
        started = time.monotonic()
        assert broker.broadcast("ping", [ALPHA]) == {ALPHA: {"ok": "pong"}}
        assert time.monotonic() - started < 1
    finally:
        broker.close()


def test_worker_down_fails_min_workers_and_is_unknown(celery_workers, celery_redis, tmp_path):
    # celery_workers starts alpha, the worker that answers; without it the test passed only when an
    # earlier test on the same xdist worker had started it (CI failed on 8632181 with 0 of 2 answered).
    gamma = start_celery_worker("gamma", ["q_gamma"], celery_redis.url, tmp_path)
    try:
        up = inspect(celery_redis.url, destination=[node("gamma")], collect=["ping"], min_workers=1)
        assert not up.failed and up["worker_names"] == [node("gamma")]
    finally:
        gamma.stop()

    result = inspect(
        celery_redis.url,
        destination=[ALPHA, node("gamma")],
        collect=["ping", "active", "reserved"],
        min_workers=2,
        timeout=2.0,
    )
    assert result.failed
    assert "min_workers=2" in result.msg
    assert "1 of 2 worker(s) answered" in result.msg
    assert f"no reply from {node('gamma')}" in result.msg
    gone = result["workers"][node("gamma")]
    assert gone["status"] == "unknown" and gone["idle"] is None and gone["active"] is None
    assert result["unknown_workers"] == [node("gamma")]
    # One worker idle, one unknown: the whole is not idle, it is unknown.
    assert result["idle"] is None
    assert result["thresholds"]["failed"] and result["thresholds"]["checked"] == ["min_workers"]


def test_no_reply_is_never_idle(celery_workers):
    result = inspect(
        celery_workers.broker.url,
        destination=[node("ghost")],
        collect=["ping", "active", "reserved"],
        wait_for="idle",
        wait_timeout=0.5,
        timeout=0.2,
    )
    assert result.failed
    assert result.msg.startswith("wait_for=idle: gave up after 0.5s; still waiting for")
    assert f"{node('ghost')}: no reply (unknown, not idle)" in result.msg


def _raw_depths(client, queue: str, keys: list[str]) -> int:
    return sum(client.llen(key) for key in keys)


def test_priority_queue_depth_counts_every_sub_queue(celery_redis):
    url, client = celery_redis.url, celery_redis.client()
    for priority in (0, 0, 3, 5, 9):
        send(url, "celery_testapp.add", (1, 2), queue="q_prio", priority=priority)
    result = inspect(url, queues=["q_prio"], collect=["ping"])
    depth = result["queues"]["q_prio"]
    assert depth["depth"] == 5
    assert depth["keys"] == ["q_prio", "q_prio\x06\x163", "q_prio\x06\x166", "q_prio\x06\x169"]
    assert sum(depth["by_priority"].values()) == 5
    assert {k: client.llen(k) for k in depth["keys"]} == dict(
        zip(depth["keys"], depth["by_priority"].values(), strict=True)
    )
    # What the runbooks do (`redis-cli llen celery`) misses the messages sent with a priority.
    assert client.llen("q_prio") < 5
    assert depth["consumers"] is None  # active_queues was not collected: who consumes it is not known

    # Key prefix, separator and ten priority steps, as a project may configure its workers.
    options = {"global_keyprefix": "pfx:", "sep": ":", "priority_steps": list(range(10))}
    app = Celery("opsbook_tests", broker=url, set_as_current=False)
    app.conf.broker_transport_options = options
    try:
        for priority in (0, 1, 7, 7):
            app.send_task("celery_testapp.add", args=[1, 2], queue="q_prio2", priority=priority)
    finally:
        app.close()
    result = inspect(url, queues=["q_prio2"], collect=["ping"], broker_transport_options=options)
    depth = result["queues"]["q_prio2"]
    assert depth["depth"] == 4
    assert depth["by_priority"]["1"] == 1 and depth["by_priority"]["7"] == 2 and depth["by_priority"]["0"] == 1
    assert "pfx:q_prio2:7" in depth["keys"] and client.llen("pfx:q_prio2:7") == 2
    # The same queue seen without the workers' transport options: empty. That is why the option exists.
    assert inspect(url, queues=["q_prio2"], collect=["ping"])["queues"]["q_prio2"]["depth"] == 0
    client.close()


def test_thresholds_name_queues_and_values(celery_workers):
    url = celery_workers.broker.url
    for _ in range(3):
        send(url, "celery_testapp.add", (1, 1), queue="q_depth")
    result = inspect(
        url,
        destination=[ALPHA, BETA],
        collect=["ping"],
        expect_queues=["celery", "q_nobody"],
        max_queue_depth={"q_depth": 2},
    )
    assert result.failed
    assert "expect_queues: nobody consumes q_nobody" in result.msg
    assert f"workers that answered: {ALPHA}, {BETA}" in result.msg
    assert "max_queue_depth: q_depth has 3 (limit 2)" in result.msg
    assert result["queues"]["q_nobody"] == {
        "depth": 0,
        "by_priority": {"0": 0, "3": 0, "6": 0, "9": 0},
        "keys": ["q_nobody", "q_nobody\x06\x163", "q_nobody\x06\x166", "q_nobody\x06\x169"],
        "exists": False,
        "consumers": [],
    }
    passing = inspect(url, destination=[ALPHA, BETA], collect=["ping"], expect_queues=["celery"], max_queue_depth=10)
    assert not passing.failed, passing.msg
    assert passing["thresholds"] == {"checked": ["expect_queues", "max_queue_depth"], "failed": []}
    celery_workers.broker.client().delete("q_depth")


def test_wait_for_idle_and_stuck_task(celery_workers):
    url = celery_workers.broker.url
    task_id = send(url, "celery_testapp.sleep", (2.5,), queue="q_alpha")
    wait_active(url, ALPHA, task_id)
    time.sleep(0.2)  # it has just started: let it run longer than the limit below

    stuck = inspect(url, destination=[ALPHA], collect=["ping"], max_task_runtime=0.05)
    assert stuck.failed
    assert "max_task_runtime=0.05s: 1 task(s) running longer" in stuck.msg
    assert f"{ALPHA}: celery_testapp.sleep[{task_id}] (running" in stuck.msg
    assert stuck["workers"][ALPHA]["idle"] is None  # reserved was not asked: not known to be idle

    short = inspect(url, destination=[ALPHA], collect=["ping"], wait_for="idle", wait_timeout=0.3)
    assert short.failed
    assert f"still waiting for {ALPHA}: celery_testapp.sleep[{task_id}]" in short.msg

    started = time.monotonic()
    waited = inspect(url, destination=[ALPHA], collect=["ping", "active", "reserved"], wait_for="idle", wait_timeout=15)
    assert not waited.failed, waited.msg
    assert waited["waited"] > 0.3 and time.monotonic() - started < 10
    assert waited["workers"][ALPHA]["idle"] is True and waited["idle"] is True


def test_wait_for_workers(celery_redis, tmp_path):
    missing = inspect(celery_redis.url, destination=[node("delta")], wait_for="workers", wait_timeout=0.5, timeout=0.2)
    assert missing.failed
    assert f"wait_for=workers: gave up after 0.5s; still waiting for no reply from {node('delta')}" in missing.msg

    delta = start_celery_worker("delta", ["q_delta"], celery_redis.url, tmp_path, wait=False)
    try:
        result = inspect(
            celery_redis.url,
            destination=[node("delta")],
            collect=["ping", "active_queues"],
            wait_for="workers",
            wait_timeout=30,
            poll_interval=0.2,
        )
        assert not result.failed, result.msg
        assert result["waited"] > 0
        assert result["workers"][node("delta")]["active_queues"] == ["q_delta"]
    finally:
        delta.stop()


def test_rabbitmq_workers_and_passive_declare_depth(rabbitmq_server, rabbit_worker):
    url = rabbitmq_server.url
    for _ in range(3):
        send(url, "celery_testapp.add", (2, 2), queue="q_rabbit_idle")
    result = inspect(
        url,
        destination=[node("rabbit")],
        collect=["ping", "active", "reserved", "active_queues"],
        queues=["q_rabbit_idle", "q_missing"],
        expect_queues=["q_rabbit"],
        timeout=5,
    )
    assert not result.failed, result.msg
    assert result["transport"] == "amqp"
    assert result["broker"] == f"amqp://opsbook:********@127.0.0.1:{rabbitmq_server.port}//"
    assert result["workers"][node("rabbit")]["active_queues"] == ["celery", "q_rabbit"]
    assert result["elapsed"] < 2
    queues = result["queues"]
    assert queues["q_rabbit_idle"] == {"depth": 3, "broker_consumers": 0, "exists": True, "consumers": []}
    assert queues["q_missing"] == {"depth": 0, "broker_consumers": 0, "exists": False, "consumers": []}
    assert queues["q_rabbit"]["broker_consumers"] == 1 and queues["q_rabbit"]["consumers"] == [node("rabbit")]
    assert_secret_free(result, rabbitmq_server.password)


def test_broker_password_never_in_output_or_errors(celery_workers, rabbitmq_server):
    redis_password = celery_workers.broker.password
    ok = inspect(celery_workers.broker.url, destination=[ALPHA])
    assert not ok.failed
    assert ok["broker"].startswith("redis://:********@127.0.0.1:")
    assert_secret_free(ok, redis_password, celery_workers.broker.url)

    secret = "S3cr3t-Pa55w0rd-Never-Shown"
    closed = helpers.free_port()
    for url in (
        f"redis://:{secret}@127.0.0.1:{closed}/0",
        f"amqp://opsbook:{secret}@127.0.0.1:{closed}//",
        # A real broker refusing the password.
        f"redis://:{secret}@127.0.0.1:{celery_workers.broker.redis.port}/0",
        f"amqp://opsbook:{secret}@127.0.0.1:{rabbitmq_server.port}//",
    ):
        failed = inspect(url, connect_timeout=2, timeout=0.2)
        assert failed.failed, url
        assert "cannot connect to the broker" in failed.msg, failed.msg
        assert_secret_free(failed, secret)


def test_ansible_cli_keeps_the_password_out(celery_workers, tmp_path):
    """Through ansible-playbook -vvv: module arguments, results and the failure stay masked."""
    secret = celery_workers.broker.password
    closed = helpers.free_port()
    (tmp_path / "vars.yml").write_text(
        json.dumps({"good_url": celery_workers.broker.url, "bad_url": f"redis://:{secret}@127.0.0.1:{closed}/0"})
    )
    (tmp_path / "vars.yml").chmod(0o600)
    playbook = tmp_path / "inspect.yml"
    playbook.write_text(
        f"""
- hosts: localhost
  gather_facts: false
  vars_files: [{tmp_path / "vars.yml"}]
  tasks:
    - opsbook.webstack.celery_inspect:
        broker_url: "{{{{ good_url }}}}"
        destination: ["{ALPHA}"]
        collect: [ping, active]
      register: good
    - ansible.builtin.debug:
        var: good
    - opsbook.webstack.celery_inspect:
        broker_url: "{{{{ bad_url }}}}"
        connect_timeout: 1
      ignore_errors: true
      register: bad
    - ansible.builtin.assert:
        that:
          - good.worker_names == ["{ALPHA}"]
          - bad is failed
          - "'cannot connect to the broker' in bad.msg"
"""
    )
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", str(playbook)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"cannot connect to the broker at 127.0.0.1:{closed} (redis)" in output
    assert secret not in output
