"""opsbook.webstack.rq_inspect against a real Redis and a real `rq worker` (rq_control: test_rq_control.py)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry

import helpers

FIXTURES = f"{__package__}.celery_fixtures" if __package__ else "celery_fixtures"
pytest.register_assert_rewrite(FIXTURES)
pytest_plugins = [FIXTURES]

from celery_fixtures import assert_secret_free, run_module, start_rq_worker, wait_until  # noqa: E402

WORKER = "rqw1"


def rq(redis_url: str, **args):
    check_mode = args.pop("check_mode", False)
    return run_module("rq_inspect", {"redis_url": redis_url, **args}, check_mode=check_mode)


@pytest.fixture(scope="module")
def rq_worker(rq_redis, tmp_path_factory) -> Iterator[helpers.ManagedProcess]:
    process = start_rq_worker(WORKER, ["q_rq", "q_rq2"], rq_redis, tmp_path_factory.mktemp("rq"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def client(rq_redis):
    conn = rq_redis.client()
    try:
        yield conn
    finally:
        conn.close()


def worker_state(client) -> str:
    return (client.hget(f"rq:worker:{WORKER}", "state") or b"").decode()


def wait_busy(client, job_id: str) -> None:
    wait_until(
        lambda: client.hget(f"rq:worker:{WORKER}", "current_job") == job_id.encode(), 15, f"{WORKER} to run {job_id}"
    )


def test_changing_options_are_refused(rq_redis):
    """rq_inspect only reads: the actions live in rq_control."""
    result = rq(rq_redis.url, action="drain")
    assert result.failed and "Unsupported parameters" in result.msg and "action" in result.msg
    assert rq(rq_redis.url)["suspended"] is False


def test_inspect_reads_everything_without_side_effects(rq_redis, rq_worker, client):
    idle = Queue("q_idle", connection=client)
    first = idle.enqueue("rq_testjobs.add", 1, 2)
    idle.enqueue("rq_testjobs.add", 3, 4)
    idle.enqueue("rq_testjobs.add", 5, 6, depends_on=first)  # deferred until `first` finishes
    scheduled = idle.enqueue_in(datetime.timedelta(hours=1), "rq_testjobs.add", 7, 8)
    failing = Queue("q_rq", connection=client).enqueue("rq_testjobs.fail", "boom for the report")
    wait_until(lambda: client.zscore(FailedJobRegistry("q_rq", connection=client).key, failing.id), 15, "a failed job")
    running = Queue("q_rq", connection=client).enqueue("rq_testjobs.sleep", 2)
    wait_busy(client, running.id)
    # Bait for RQ's cleanup: an expired entry in a started registry and a dead worker still registered.
    started_key = StartedJobRegistry("q_idle", connection=client).key
    client.zadd(started_key, {"ghostjob:ghostexec": 1})
    client.sadd("rq:workers", "rq:worker:ghost")

    result = rq(rq_redis.url, queues=["q_rq", "q_idle"])
    assert not result.failed, result.msg
    assert not result.changed
    worker = result["workers"][WORKER]
    assert worker["state"] == "busy" and worker["queues"] == ["q_rq", "q_rq2"]
    assert worker["current_job"]["id"] == running.id
    assert worker["current_job"]["description"].startswith("rq_testjobs.sleep(2)")
    assert worker["heartbeat_age"] < 30 and worker["pid"] > 0 and worker["failed_job_count"] >= 1
    assert result["stale_workers"] == ["ghost"]
    assert result["suspended"] is False

    q_idle, q_rq = result["queues"]["q_idle"], result["queues"]["q_rq"]
    assert q_idle["depth"] == 2 and q_idle["deferred"] == 1 and q_idle["scheduled"] == 1 and q_idle["started"] == 1
    assert q_idle["jobs"]["scheduled"][0]["id"] == scheduled.id
    assert q_rq["started"] == 1 and q_rq["jobs"]["started"] == [running.id]
    assert q_rq["failed"] == 1
    [failed] = q_rq["jobs"]["failed"]
    assert failed["id"] == failing.id and failed["exc"] == "RuntimeError: boom for the report"
    assert failed["description"].startswith("rq_testjobs.fail(")

    # Nothing was cleaned up behind our back.
    assert client.zscore(started_key, "ghostjob:ghostexec") == 1
    assert client.sismember("rq:workers", "rq:worker:ghost")
    assert FailedJobRegistry("q_idle", connection=client).get_job_count(cleanup=False) == 0

    thresholds = rq(rq_redis.url, queues=["q_rq", "q_idle"], min_workers=2, max_queue_depth={"q_idle": 1})
    assert thresholds.failed
    assert (
        f"min_workers=2: 1 live worker(s) on q_rq, q_idle ({WORKER}); registered but expired: ghost" in thresholds.msg
    )
    assert "max_queue_depth: q_idle has 2 (limit 1)" in thresholds.msg

    for key in (started_key, "rq:queue:q_idle", "rq:deferred:q_idle", "rq:scheduled:q_idle"):
        client.delete(key)
    client.srem("rq:workers", "rq:worker:ghost")
    client.delete(FailedJobRegistry("q_rq", connection=client).key)
    wait_until(lambda: worker_state(client) == "idle", 15, f"{WORKER} idle again")


def test_redis_password_never_shown(rq_redis):
    secret = "Rq-S3cret-Not-For-Logs"
    closed = helpers.free_port()
    for url in (f"redis://:{secret}@127.0.0.1:{closed}/0", f"redis://:{secret}@127.0.0.1:{rq_redis.redis.port}/7"):
        result = rq(url, connect_timeout=1)
        assert result.failed and result.msg.startswith("cannot connect to Redis at 127.0.0.1:"), result.msg
        assert_secret_free(result, secret)
    ok = rq(rq_redis.url)
    assert not ok.failed
    assert ok["redis"].startswith("redis://:********@127.0.0.1:")
    assert_secret_free(ok, rq_redis.password)
