"""opsbook.webstack.celery_control against real Celery workers (Redis and RabbitMQ) and the sample app's
worker recording results in PostgreSQL with django-celery-results."""

from __future__ import annotations

import datetime
import time
import uuid

import pytest

import helpers

FIXTURES = f"{__package__}.celery_fixtures" if __package__ else "celery_fixtures"
pytest.register_assert_rewrite(FIXTURES)
pytest_plugins = [FIXTURES]

from celery_fixtures import (  # noqa: E402  (after pytest_plugins, which must be module level and first)
    JOURNAL_READER,
    assert_secret_free,
    node,
    run_module,
    send,
    start_celery_worker,
    wait_until,
)

ALPHA = node("alpha")
BETA = node("beta")
CERTIFICATE_TASK = "certificates.tasks.generate_certificate"


def control(broker_url: str, action: str, check_mode: bool = False, **args):
    return run_module("celery_control", {"broker_url": broker_url, "action": action, **args}, check_mode=check_mode)


def active_queues(broker_url: str, worker: str) -> list[str]:
    """What the worker itself says it consumes, asked through celery_inspect."""
    result = run_module(
        "celery_inspect", {"broker_url": broker_url, "destination": [worker], "collect": ["active_queues"]}
    )
    return result["workers"][worker]["active_queues"]


def wait_active(broker_url: str, worker: str, task_id: str) -> None:
    def active():
        result = run_module(
            "celery_inspect", {"broker_url": broker_url, "destination": [worker], "collect": ["active"]}
        )
        return any(t["id"] == task_id for t in result["workers"][worker].get("active") or [])

    wait_until(active, 15, f"{task_id} active on {worker}")


def test_cancel_and_add_consumer_confirmed_through_active_queues(celery_workers):
    url = celery_workers.broker.url
    args = {"destination": [ALPHA, BETA], "queues": ["q_alpha"], "wait_timeout": 10}

    preview = control(url, "cancel_consumer", check_mode=True, **args)
    assert not preview.failed, preview.msg
    assert preview.changed and preview["plan"] == {ALPHA: ["q_alpha"]}
    assert preview["confirmed"] is None
    assert active_queues(url, ALPHA) == ["celery", "q_alpha"], "check mode changed the worker"

    try:
        cancelled = control(url, "cancel_consumer", **args)
        assert not cancelled.failed, cancelled.msg
        assert cancelled.changed and cancelled["confirmed"] is True
        assert cancelled["workers"][ALPHA]["before"] == ["celery", "q_alpha"]
        assert cancelled["workers"][ALPHA]["after"] == ["celery"]
        assert cancelled["workers"][ALPHA]["replies"] == {"cancel_consumer": ["no longer consuming from q_alpha"]}
        assert cancelled["workers"][BETA]["after"] == ["celery", "q_beta"]  # it never consumed q_alpha
        assert active_queues(url, ALPHA) == ["celery"]
        assert cancelled["elapsed"] < 5

        again = control(url, "cancel_consumer", **args)
        assert not again.failed and not again.changed and again["plan"] == {}
    finally:
        added = control(url, "add_consumer", **args)
    assert not added.failed, added.msg
    assert added.changed and added["confirmed"] is True
    assert added["plan"] == {ALPHA: ["q_alpha"], BETA: ["q_alpha"]}
    assert active_queues(url, BETA) == ["celery", "q_alpha", "q_beta"]
    # Put beta back as it was.
    restored = control(url, "cancel_consumer", destination=[BETA], queues=["q_alpha"], wait_timeout=10)
    assert restored.changed and active_queues(url, BETA) == ["celery", "q_beta"]
    assert not control(url, "add_consumer", destination=[ALPHA], queues=["q_alpha"]).changed


def test_unknown_destination_changes_nothing(celery_workers):
    url = celery_workers.broker.url
    result = control(url, "cancel_consumer", destination=[ALPHA, node("ghost")], queues=["q_alpha"], timeout=1.5)
    assert result.failed and not result.changed
    assert f"no reply from {node('ghost')} within 1.5s: their state is unknown, so nothing was changed" in result.msg
    assert active_queues(url, ALPHA) == ["celery", "q_alpha"]


def test_drain_waits_for_long_task_and_reports_it(celery_redis, tmp_path):
    url = celery_redis.url
    drainer = start_celery_worker("drainer", ["q_drain", "q_drain2"], url, tmp_path)
    try:
        task_id = send(url, "celery_testapp.sleep", (3,), queue="q_drain")
        wait_active(url, node("drainer"), task_id)

        preview = control(url, "drain", check_mode=True, destination=[node("drainer")])
        assert preview.changed and preview["plan"] == {node("drainer"): ["q_drain", "q_drain2"]}
        assert [t["id"] for t in preview["still_running"][node("drainer")]] == [task_id]
        assert active_queues(url, node("drainer")) == ["q_drain", "q_drain2"]

        started = time.monotonic()
        short = control(url, "drain", destination=[node("drainer")], queues=["q_drain"], wait_timeout=1)
        assert short.failed and short.changed
        assert short["confirmed"] is True and short["drained"] is False
        assert short.msg.startswith(f"drain: gave up after 1s; still running: {node('drainer')}: celery_testapp.sleep[")
        assert task_id in short.msg and "(running " in short.msg
        running = short["still_running"][node("drainer")]
        assert running[0]["id"] == task_id and running[0]["state"] == "active" and running[0]["args"] == [3]
        assert short["workers"][node("drainer")]["after"] == ["q_drain2"]
        assert time.monotonic() - started < 4

        # Consumption stopped: a new task waits in the queue instead of running.
        queued = send(url, "celery_testapp.add", (1, 1), queue="q_drain")

        waited = control(url, "drain", destination=[node("drainer")], queues=["q_drain"], wait_timeout=15)
        assert not waited.failed, waited.msg
        assert not waited.changed  # the consumer was already cancelled: only waited
        assert waited["drained"] is True and waited["still_running"] == {}
        assert 0.5 < waited["waited"] < 5
        depth = run_module("celery_inspect", {"broker_url": url, "queues": ["q_drain"], "collect": ["ping"]})
        assert depth["queues"]["q_drain"]["depth"] == 1, f"{queued} should still be queued"

        lenient = control(url, "drain", destination=[node("drainer")], wait_timeout=5, fail_on_timeout=False)
        assert not lenient.failed and lenient["drained"] is True
        assert lenient.changed and lenient["plan"] == {node("drainer"): ["q_drain2"]}
        assert active_queues(url, node("drainer")) == []
    finally:
        drainer.stop()
        celery_redis.client().delete("q_drain")


def test_warm_shutdown_waits_for_the_running_task(celery_redis, tmp_path):
    url = celery_redis.url
    stopper = start_celery_worker("stopper", ["q_stop"], url, tmp_path)
    try:
        preview = control(url, "shutdown", check_mode=True, destination=[node("stopper")])
        assert preview.changed and preview["stopped"] == []
        assert stopper.alive()

        task_id = send(url, "celery_testapp.sleep", (1.5,), queue="q_stop")
        wait_active(url, node("stopper"), task_id)
        result = control(url, "shutdown", destination=[node("stopper")], wait_timeout=20, timeout=2.0)
        assert not result.failed, result.msg
        assert result.changed and result["stopped"] == [node("stopper")] and result["restarted"] == []
        assert result["workers"][node("stopper")]["pid"] == stopper.pid
        wait_until(lambda: not stopper.alive(), 15, "the worker process to exit")
        assert stopper.proc.returncode == 0
        # Warm: the running task finished before the worker left.
        assert f"Task celery_testapp.sleep[{task_id}] succeeded" in stopper.log_path.read_text()

        gone = control(url, "shutdown", destination=[node("stopper")], timeout=0.3)
        assert not gone.failed and not gone.changed
        assert gone["unknown_workers"] == [node("stopper")]
        assert "not sent a shutdown (they may be stopped already" in str(gone.data.get("warnings"))
    finally:
        stopper.stop()


def test_requeue_failed_task_runs_it_again(journal_stack):
    stack = journal_stack
    since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=2)).isoformat()
    certificate_id = str(uuid.uuid4())
    # The certificate does not exist yet: the task fails, as in the runbook's "failed task recovery".
    failed_id = send(stack.broker_url, CERTIFICATE_TASK, (certificate_id,))
    wait_until(
        lambda: (
            stack.rows("SELECT status FROM django_celery_results_taskresult WHERE task_id = %s", [failed_id])
            == [("FAILURE",)]
        ),
        30,
        f"{failed_id} recorded as FAILURE",
    )
    name, stored_args, stored_kwargs = stack.rows(
        "SELECT task_name, task_args, task_kwargs FROM django_celery_results_taskresult WHERE task_id = %s", [failed_id]
    )[0]
    assert name == CERTIFICATE_TASK and certificate_id in stored_args and stored_kwargs == '"{}"'

    (article_id,) = stack.rows(
        "INSERT INTO articles_article (submission_id, title, author, status, abstract, metadata, created_at) "
        "VALUES (gen_random_uuid(), 'Recovered', 'Ada', 'PUBLISHED', '', '{}', now()) RETURNING id"
    )[0]
    stack.rows(
        "INSERT INTO certificates_certificate "
        "(certificate_id, article_id, recipient, status, file, task_id, created_at) "
        "VALUES (%s, %s, 'Ada Lovelace', 'PENDING', '', '', now())",
        [certificate_id, article_id],
    )
    args = {
        "task_names": [CERTIFICATE_TASK],
        "since": since,
        "limit": 10,
        "result_db": stack.result_db(),
        "destination": [node("journal")],
    }

    preview = control(stack.broker_url, "requeue_failed", check_mode=True, **args)
    assert not preview.failed, preview.msg
    assert preview.changed and preview["more"] is False
    [planned] = preview["requeued"]
    assert planned["task_id"] == failed_id and planned["task_name"] == CERTIFICATE_TASK
    assert planned["args"] == [certificate_id] and planned["kwargs"] == {}
    new_id = planned["new_task_id"]
    time.sleep(0.5)
    assert stack.rows("SELECT status FROM certificates_certificate WHERE certificate_id = %s", [certificate_id]) == [
        ("PENDING",)
    ], "check mode sent the task"
    assert stack.rows("SELECT 1 FROM django_celery_results_taskresult WHERE task_id = %s", [new_id]) == []

    done = control(stack.broker_url, "requeue_failed", **args)
    assert not done.failed, done.msg
    assert done.changed and [r["new_task_id"] for r in done["requeued"]] == [new_id]
    wait_until(
        lambda: (
            stack.rows("SELECT status FROM django_celery_results_taskresult WHERE task_id = %s", [new_id])
            == [("SUCCESS",)]
        ),
        30,
        f"the requeued task {new_id} to succeed",
    )
    status, task_id = stack.rows(
        "SELECT status, task_id FROM certificates_certificate WHERE certificate_id = %s", [certificate_id]
    )[0]
    assert (status, task_id) == ("ISSUED", new_id)
    assert (stack.media_root / "certificates" / f"{certificate_id}.txt").is_file()
    # Same name and arguments as the failed run.
    assert stack.rows(
        "SELECT task_name, task_args FROM django_celery_results_taskresult WHERE task_id = %s", [new_id]
    ) == [(CERTIFICATE_TASK, stored_args)]

    again = control(stack.broker_url, "requeue_failed", **args)
    assert not again.failed and not again.changed and again["requeued"] == []
    assert again["skipped"] == [
        {"task_id": failed_id, "task_name": CERTIFICATE_TASK, "reason": f"already requeued as {new_id} (SUCCESS)"}
    ]
    assert_secret_free(done, stack.reader_password, stack.postgres.password)


def test_requeue_reports_database_errors_without_secrets(journal_stack):
    result = control(
        journal_stack.broker_url,
        "requeue_failed",
        since="1h",
        result_db={**journal_stack.result_db(), "password": "wrong-Secret-123"},
    )
    assert result.failed
    assert result.msg.startswith("cannot read failed tasks from django_celery_results_taskresult: OperationalError")
    assert_secret_free(result, "wrong-Secret-123", journal_stack.reader_password)


def fail_certificates(stack, count: int) -> list[str]:
    """count certificate generations for certificates that do not exist: the worker records each as FAILURE."""
    ids = [send(stack.broker_url, CERTIFICATE_TASK, (str(uuid.uuid4()),)) for _ in range(count)]
    wait_until(
        lambda: (
            stack.rows(
                "SELECT count(*) FROM django_celery_results_taskresult WHERE task_id = ANY(%s) AND status = 'FAILURE'",
                [ids],
            )
            == [(count,)]
        ),
        30,
        f"{count} failures recorded",
    )
    return ids


def failures(stack) -> set[str]:
    rows = stack.rows("SELECT task_id FROM django_celery_results_taskresult WHERE status = 'FAILURE'")
    return {task_id for (task_id,) in rows}


def test_purge_failed_deletes_old_failures_with_counts(journal_stack):
    stack = journal_stack
    old = fail_certificates(stack, 2)
    cutoff = datetime.datetime.now(datetime.UTC).isoformat()
    time.sleep(0.05)
    new = fail_certificates(stack, 2)
    ok = send(stack.broker_url, "articles.tasks.slow_task", (0,))
    wait_until(
        lambda: (
            stack.rows("SELECT status FROM django_celery_results_taskresult WHERE task_id = %s", [ok]) == [("SUCCESS",)]
        ),
        30,
        "a successful task recorded",
    )
    before = failures(stack)
    assert set(old + new) <= before
    older = before - set(new)  # failures of other tests are older too
    args = {"older_than": cutoff, "result_db": stack.result_db()}

    denied = control(stack.broker_url, "purge_failed", **args)  # the reader may only SELECT
    assert denied.failed
    assert denied.msg.startswith(
        "cannot purge failed tasks from django_celery_results_taskresult: InsufficientPrivilege"
    ), denied.msg
    assert failures(stack) == before

    stack.rows(f"GRANT DELETE ON django_celery_results_taskresult TO {JOURNAL_READER}")
    try:
        preview = control(stack.broker_url, "purge_failed", check_mode=True, **args)
        assert not preview.failed, preview.msg
        assert preview.changed
        assert (preview["failed_before"], preview["purged_count"], preview["failed_after"]) == (
            len(before),
            len(older),
            len(before),
        )
        assert {p["task_id"] for p in preview["purged"]} == older
        assert failures(stack) == before, "check mode deleted rows"

        done = control(stack.broker_url, "purge_failed", **args)
        assert not done.failed, done.msg
        assert done.changed
        assert (done["failed_before"], done["purged_count"], done["failed_after"]) == (
            len(before),
            len(older),
            len(new),
        )
        assert done["older_than"] == datetime.datetime.fromisoformat(cutoff).isoformat()
        assert failures(stack) == set(new)
        assert stack.rows("SELECT status FROM django_celery_results_taskresult WHERE task_id = %s", [ok]) == [
            ("SUCCESS",)
        ], "a successful result was deleted"

        again = control(stack.broker_url, "purge_failed", **args)
        assert not again.failed and not again.changed and again["purged_count"] == 0

        bad = control(stack.broker_url, "purge_failed", older_than="a week", result_db=stack.result_db())
        assert bad.failed and bad.msg.startswith("older_than='a week' is neither"), bad.msg

        rest = control(stack.broker_url, "purge_failed", result_db=stack.result_db())
        assert not rest.failed and (rest["purged_count"], rest["failed_after"]) == (len(new), 0)
        assert failures(stack) == set()
        assert_secret_free(rest, stack.reader_password, stack.postgres.password)
    finally:
        stack.rows(f"REVOKE DELETE ON django_celery_results_taskresult FROM {JOURNAL_READER}")


def test_purge_failed_needs_the_result_database(celery_redis):
    result = control(celery_redis.url, "purge_failed", older_than="7d")
    assert result.failed and "result_db" in result.msg, result.msg


def test_rabbitmq_cancel_consumer_seen_by_the_broker(rabbitmq_server, rabbit_worker):
    url = rabbitmq_server.url
    rabbit = node("rabbit")

    def consumers() -> int:
        result = run_module("celery_inspect", {"broker_url": url, "queues": ["q_rabbit"], "collect": ["ping"]})
        return result["queues"]["q_rabbit"]["broker_consumers"]

    assert consumers() == 1
    cancelled = control(url, "cancel_consumer", destination=[rabbit], queues=["q_rabbit"], timeout=5)
    try:
        assert not cancelled.failed, cancelled.msg
        assert cancelled["confirmed"] is True and cancelled["workers"][rabbit]["after"] == ["celery"]
        assert consumers() == 0  # RabbitMQ agrees: nobody consumes the queue any more
    finally:
        added = control(url, "add_consumer", destination=[rabbit], queues=["q_rabbit"], timeout=5)
    assert added.changed and added["confirmed"] is True
    assert consumers() == 1
    assert_secret_free(cancelled, rabbitmq_server.password)


def test_control_errors_never_show_the_password():
    secret = "Another-S3cret-Value"
    closed = helpers.free_port()
    for url in (f"redis://:{secret}@127.0.0.1:{closed}/2", f"amqp://guest:{secret}@127.0.0.1:{closed}//"):
        result = control(url, "drain", destination=["celery@nowhere"], connect_timeout=1)
        assert result.failed and "cannot connect to the broker at 127.0.0.1" in result.msg, result.msg
        assert_secret_free(result, secret)
