"""opsbook.webstack.rq_control on a real Redis with a real `rq worker`: requeue and purge failed jobs, drain, resume.

Every failed job here failed for real: the worker ran a job that raises."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry

import helpers

FIXTURES = f"{__package__}.celery_fixtures" if __package__ else "celery_fixtures"
pytest.register_assert_rewrite(FIXTURES)
pytest_plugins = [FIXTURES]

from celery_fixtures import assert_secret_free, run_module, start_rq_worker, wait_until  # noqa: E402

WORKER = "rqc1"


def ctl(redis_url: str, action: str, **args):
    check_mode = args.pop("check_mode", False)
    return run_module("rq_control", {"redis_url": redis_url, "action": action, **args}, check_mode=check_mode)


@pytest.fixture(scope="module")
def rq_worker(rq_redis, tmp_path_factory) -> Iterator[helpers.ManagedProcess]:
    queues = ["q_ctl", "q_ctl2", "q_purge", "q_keep"]
    process = start_rq_worker(WORKER, queues, rq_redis, tmp_path_factory.mktemp("rqc"))
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


def fail_jobs(client, queue: str, count: int) -> list[str]:
    """count jobs that raise, run by the worker until each is in the failed job registry."""
    jobs = [Queue(queue, connection=client).enqueue("rq_testjobs.fail", f"purge me {i}") for i in range(count)]
    key = FailedJobRegistry(queue, connection=client).key
    wait_until(lambda: all(client.zscore(key, j.id) is not None for j in jobs), 30, f"{count} failed jobs on {queue}")
    return [j.id for j in jobs]


def failed_ids(client, queue: str) -> set[str]:
    return {i.decode() for i in client.zrange(FailedJobRegistry(queue, connection=client).key, 0, -1)}


def test_requeue_failed_job_runs_it_again(rq_redis, rq_worker, client):
    counter = f"flaky:{uuid.uuid4()}"
    job = Queue("q_ctl2", connection=client).enqueue("rq_testjobs.flaky", counter)
    failed_key = FailedJobRegistry("q_ctl2", connection=client).key
    wait_until(lambda: client.zscore(failed_key, job.id), 15, "the flaky job to fail")
    assert client.get(counter) == b"1"

    preview = ctl(rq_redis.url, "requeue_failed", queues=["q_ctl2"], since="10m", check_mode=True)
    assert not preview.failed, preview.msg
    assert preview.changed and [r["id"] for r in preview["requeued"]] == [job.id]
    time.sleep(0.5)
    assert client.zscore(failed_key, job.id) is not None and client.get(counter) == b"1", "check mode requeued"

    done = ctl(rq_redis.url, "requeue_failed", queues=["q_ctl2"], since="10m")
    assert not done.failed, done.msg
    assert done.changed and done["requeued"] == preview["requeued"]
    wait_until(lambda: client.hget(f"rq:job:{job.id}", "status") == b"finished", 15, "the requeued job to finish")
    assert client.get(counter) == b"2"
    assert client.zscore(failed_key, job.id) is None
    assert done["queues"]["q_ctl2"]["failed"] == 0

    again = ctl(rq_redis.url, "requeue_failed", queues=["q_ctl2"])
    assert not again.failed and not again.changed and again["requeued"] == []


def test_drain_suspends_waits_and_reports(rq_redis, rq_worker, client):
    running = Queue("q_ctl", connection=client).enqueue("rq_testjobs.sleep", 2.5)
    wait_busy(client, running.id)
    try:
        preview = ctl(rq_redis.url, "drain", check_mode=True)
        assert preview.changed and preview["drained"] is None
        assert preview["still_running"][WORKER]["id"] == running.id
        assert preview["suspended"] is False

        short = ctl(rq_redis.url, "drain", wait_timeout=0.5)
        assert short.failed and short.changed
        assert short.msg.startswith(f"drain: gave up after 0.5s; still busy: {WORKER}: job {running.id}")
        assert short["still_running"][WORKER]["id"] == running.id
        assert short["drained"] is False and short["suspended"] is True

        waited = ctl(rq_redis.url, "drain", wait_timeout=15)
        assert not waited.failed, waited.msg
        assert not waited.changed and waited["drained"] is True and waited["waited"] > 0.5

        # Suspended: a new job stays queued, and the worker says so once it has looked.
        later = Queue("q_ctl", connection=client).enqueue("rq_testjobs.add", 2, 3)
        wait_until(lambda: worker_state(client) == "suspended", 10, f"{WORKER} to report suspended")
        assert client.lpos("rq:queue:q_ctl", later.id) is not None

        preview_resume = ctl(rq_redis.url, "resume", check_mode=True)
        assert preview_resume.changed and preview_resume["suspended"] is True
        resumed = ctl(rq_redis.url, "resume")
        assert resumed.changed and resumed["suspended"] is False
        wait_until(lambda: client.hget(f"rq:job:{later.id}", "status") == b"finished", 15, "the queued job to run")
        assert not ctl(rq_redis.url, "resume").changed
    finally:
        client.delete("rq:suspended")


def test_purge_failed_by_age_with_counts_check_mode_first(rq_redis, rq_worker, client):
    old = fail_jobs(client, "q_purge", 2)
    cutoff = datetime.datetime.now(datetime.UTC).isoformat()
    time.sleep(0.05)
    new = fail_jobs(client, "q_purge", 3)
    other = fail_jobs(client, "q_keep", 1)
    assert all(client.exists(f"rq:results:{j}") for j in old), "RQ keeps each failure in its result stream"

    preview = ctl(rq_redis.url, "purge_failed", queues=["q_purge"], older_than=cutoff, check_mode=True)
    assert not preview.failed, preview.msg
    assert preview.changed
    assert (preview["failed_before"], preview["purged_count"], preview["failed_after"]) == (5, 2, 5)
    assert [p["id"] for p in preview["purged"]] == old
    assert preview["purged"][0]["description"].startswith("rq_testjobs.fail(")
    assert failed_ids(client, "q_purge") == set(old + new), "check mode removed jobs"
    assert all(client.exists(f"rq:job:{j}") for j in old)

    done = ctl(rq_redis.url, "purge_failed", queues=["q_purge"], older_than=cutoff)
    assert not done.failed, done.msg
    assert done.changed and done["purge"] == {"q_purge": {"before": 5, "purged": 2, "after": 3}}
    assert (done["failed_before"], done["purged_count"], done["failed_after"]) == (5, 2, 3)
    assert done["queues"]["q_purge"]["failed"] == 3
    assert failed_ids(client, "q_purge") == set(new)
    for job_id in old:  # the job, its results: gone
        assert not client.exists(f"rq:job:{job_id}") and not client.exists(f"rq:results:{job_id}")
    assert all(client.exists(f"rq:job:{j}") for j in new)
    assert failed_ids(client, "q_keep") == set(other), "another queue's failed jobs were touched"

    again = ctl(rq_redis.url, "purge_failed", queues=["q_purge"], older_than=cutoff)
    assert not again.failed and not again.changed
    assert (again["failed_before"], again["purged_count"], again["failed_after"]) == (3, 0, 3)

    rest = ctl(rq_redis.url, "purge_failed", queues=["q_purge"], list_limit=2)
    assert not rest.failed and rest.changed
    assert (rest["purged_count"], rest["failed_after"], len(rest["purged"])) == (3, 0, 2)
    assert failed_ids(client, "q_purge") == set() and failed_ids(client, "q_keep") == set(other)
    client.delete(FailedJobRegistry("q_keep", connection=client).key)


def test_purge_failed_refuses_bad_input_and_changes_nothing(rq_redis, rq_worker, client):
    failed = fail_jobs(client, "q_purge", 1)
    try:
        no_queue = ctl(rq_redis.url, "purge_failed")
        assert no_queue.failed and "queues" in no_queue.msg, no_queue.msg
        bad_age = ctl(rq_redis.url, "purge_failed", queues=["q_purge"], older_than="last tuesday")
        assert bad_age.failed
        assert bad_age.msg.startswith("older_than='last tuesday' is neither an ISO 8601 time"), bad_age.msg
        assert failed_ids(client, "q_purge") == set(failed)
    finally:
        client.delete(FailedJobRegistry("q_purge", connection=client).key)


def test_redis_password_never_shown(rq_redis):
    secret = "Rq-S3cret-Not-For-Logs"
    closed = helpers.free_port()
    for url in (f"redis://:{secret}@127.0.0.1:{closed}/0", f"redis://:{secret}@127.0.0.1:{rq_redis.redis.port}/7"):
        result = ctl(url, "purge_failed", queues=["q_purge"], connect_timeout=1)
        assert result.failed and result.msg.startswith("cannot connect to Redis at 127.0.0.1:"), result.msg
        assert_secret_free(result, secret)
    ok = ctl(rq_redis.url, "resume")
    assert not ok.failed and ok["redis"].startswith("redis://:********@127.0.0.1:")
    assert_secret_free(ok, rq_redis.password)
