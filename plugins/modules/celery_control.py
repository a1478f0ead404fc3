#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: celery_control
short_description: Change what Celery workers do - consumers, warm shutdown, drain, requeue or purge of failed tasks
version_added: "0.1.0"
description:
  - The mutating side of M(opsbook.webstack.celery_inspect), through the broker with a bare Celery app
    (no project code on the host).
  - C(cancel_consumer) and C(add_consumer) change which queues the workers consume, only where needed,
    and confirm the change through the workers' active queues.
  - C(shutdown) asks the workers for a warm shutdown (running tasks finish first) and waits until they
    stop answering, or answer with a new process id (a service manager restarted them).
  - C(drain) stops the workers consuming (O(queues), or every queue they consume), confirms it through
    their active queues, then waits until they have no active and no reserved task or O(wait_timeout)
    passes, and returns what was still running.
  - C(requeue_failed) reads failed tasks recorded by django-celery-results (with C(result_extended) on)
    from its PostgreSQL table, by task name, since a time, with a limit, and sends each again with the
    same name, arguments and keyword arguments.
  - C(purge_failed) deletes failed tasks (C(status = 'FAILURE') rows) from the django-celery-results
    table, optionally only those done before O(older_than) and of O(task_names), in one transaction, and
    returns the count before and after. It does not talk to the broker or the workers.
  - A named worker that does not answer is unknown; the module changes nothing and fails rather than
    act on a partial view (except C(shutdown), which warns and leaves it alone).
  - In check mode nothing is sent to the workers and nothing is requeued; the result says what would be done.
author:
  - opsbook engineers (@opsbook)
options:
  action:
    description:
      - What to do. See the description.
    type: str
    required: true
    choices: [cancel_consumer, add_consumer, shutdown, drain, requeue_failed, purge_failed]
  queues:
    description:
      - Queues to cancel or add (required for C(cancel_consumer) and C(add_consumer)).
      - For C(drain), the queues to stop consuming; omit to stop every queue the workers consume.
        The wait that follows is for every task the workers run, whatever queue it came from.
      - An added queue gets a direct exchange and routing key of its own name, as Celery's automatic
        queues do.
    type: list
    elements: str
  wait_timeout:
    description:
      - Deadline in seconds for confirming a consumer change, for C(drain) to see the workers idle,
        and for C(shutdown) to see the workers gone.
    type: float
    default: 60
  poll_interval:
    description:
      - Seconds between two polls while waiting.
    type: float
    default: 0.5
  fail_on_timeout:
    description:
      - For C(drain), fail when tasks are still running at the deadline. With V(false), the module
        warns, returns C(drained=false) and what was still running, and the play goes on.
    type: bool
    default: true
  task_names:
    description:
      - For C(requeue_failed), the task names to requeue (C(certificates.tasks.generate_certificate)).
        Omit to requeue failed tasks of every name (then O(since) is required).
      - For C(purge_failed), only failed tasks of these names; omit for every name.
    type: list
    elements: str
  since:
    description:
      - For C(requeue_failed), only tasks that failed at or after this time. An ISO 8601 time
        (C(2025-01-31T12:00:00Z); without a zone, UTC) or a duration back from now (C(90m), C(2h), C(1d)).
    type: str
  older_than:
    description:
      - For C(purge_failed), only tasks that failed before this time. A duration back from now
        (C(90m), C(2h), C(7d)) or an ISO 8601 time (without a zone, UTC). Omit to purge every failed task
        (of O(task_names)).
    type: str
  limit:
    description:
      - For C(requeue_failed), at most this many tasks, oldest failure first. C(more) in the result
        says whether others matched.
    type: int
    default: 100
  requeue_queue:
    description:
      - For C(requeue_failed), the queue to send the tasks to. The result table does not record the
        queue a task came from; omit to use Celery's default queue (C(celery)).
    type: str
  result_db:
    description:
      - For C(requeue_failed) and C(purge_failed) (required), the PostgreSQL database of the
        django-celery-results backend.
        Unset connection options fall back to libpq's environment variables and C(~/.pgpass).
    type: dict
    suboptions:
      host:
        description: Host name or Unix socket directory.
        type: str
      port:
        description: Port.
        type: int
      user:
        description: Role to connect as. C(requeue_failed) needs SELECT on the table, C(purge_failed) also DELETE.
        type: str
      password:
        description: Password of O(result_db.user).
        type: str
      dbname:
        description: Database name.
        type: str
      sslmode:
        description: libpq C(sslmode).
        type: str
        choices: [disable, allow, prefer, require, verify-ca, verify-full]
      connect_timeout:
        description: Seconds to wait for the database connection.
        type: int
        default: 10
      table:
        description: The result table, optionally schema-qualified.
        type: str
        default: django_celery_results_taskresult
extends_documentation_fragment:
  - opsbook.webstack.celery
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the workers' state (and the result table) and reports what would be done; sends and deletes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - psycopg (3.x) for C(requeue_failed) and C(purge_failed)
notes:
  - C(requeue_failed) gives each resent task the id C(uuid5(NAMESPACE_URL, "opsbook:requeue:<failed id>")),
    and skips a failed task whose resent copy already has a row in the table, so running it twice does not
    send a task twice once the first copy has started (the sample app records C(STARTED)). A copy that
    is still waiting in the queue has no row yet.
  - Arguments are read from C(task_args) and C(task_kwargs), which hold Celery's C(argsrepr) and
    C(kwargsrepr) for task protocol 2. A task sent with a custom or shortened C(argsrepr) cannot be
    resent faithfully and is skipped with the reason.
  - C(purge_failed) does not ask for a confirmation; the playbook that runs it should
    (C(playbooks/celery.yml) wants C(celery_purge_confirm) equal to the app's database name).
    A Redis result backend (C(celery-task-meta-*) keys) expires results by itself after
    C(result_expires), one day by default; this module does not purge it.
  - C(drain) leaves the workers running without consumers; a restart (or C(add_consumer)) brings the
    consumers back.
seealso:
  - module: opsbook.webstack.celery_inspect
  - name: Celery workers guide, remote control
    description: The control commands this module sends.
    link: https://docs.celeryq.dev/en/stable/userguide/workers.html#remote-control
"""

EXAMPLES = r"""
- name: CELERY | Drain the workers of this host before a deploy (wait up to 10 minutes)
  opsbook.webstack.celery_control:
    broker_url: "{{ app_broker_url }}"
    action: drain
    destination: ["celery@{{ ansible_facts['hostname'] }}"]
    wait_timeout: 600
  register: celery_register_drain

- name: CELERY | Stop consuming the certificates queue everywhere
  opsbook.webstack.celery_control:
    broker_url: "{{ app_broker_url }}"
    action: cancel_consumer
    queues: [certificates]

- name: CELERY | Consume it again
  opsbook.webstack.celery_control:
    broker_url: "{{ app_broker_url }}"
    action: add_consumer
    queues: [certificates]

- name: CELERY | Warm shutdown of one worker
  opsbook.webstack.celery_control:
    broker_url: "{{ app_broker_url }}"
    action: shutdown
    destination: [celery@app2]
    wait_timeout: 300

- name: CELERY | Requeue certificate generations that failed in the last 2 hours
  opsbook.webstack.celery_control:
    broker_url: "{{ app_broker_url }}"
    action: requeue_failed
    task_names: [certificates.tasks.generate_certificate]
    since: 2h
    limit: 500
    result_db:
      host: db1
      dbname: journal
      user: journal
      password: "{{ vault_journal_db_password }}"

- name: CELERY | Delete failed task results older than a week
  opsbook.webstack.celery_control:
    broker_url: "{{ app_broker_url }}"
    action: purge_failed
    older_than: 7d
    result_db:
      host: db1
      dbname: journal
      user: journal
      password: "{{ vault_journal_db_password }}"
  register: celery_register_purge
"""

RETURN = r"""
workers:
  description:
    - Per worker that answered, its active queues before and after (consumer actions and C(drain)),
      its process id (C(shutdown)), and its replies to the commands sent.
  returned: always
  type: dict
  sample:
    celery@app1:
      before: [celery, certificates]
      after: [celery]
      replies: {cancel_consumer: ["no longer consuming from certificates"]}
plan:
  description: Per worker, the queues that were (or in check mode would be) cancelled or added.
  returned: when action is cancel_consumer, add_consumer or drain
  type: dict
  sample: {celery@app1: [certificates]}
confirmed:
  description: The workers' active queues showed the change (null in check mode or when nothing changed).
  returned: when action is cancel_consumer, add_consumer or drain
  type: bool
  sample: true
drained:
  description: Every worker answered with no active and no reserved task before the deadline.
  returned: when action is drain
  type: bool
  sample: false
still_running:
  description: Per worker, the tasks still active or reserved at the end of the wait (in check mode, now).
  returned: when action is drain
  type: dict
  sample:
    celery@app1:
      - id: 3f2c1e9a-5b7d-4c1e-9a3b-1f2e3d4c5b6a
        name: articles.tasks.slow_task
        args: [30]
        state: active
        runtime: 12.4
stopped:
  description: Workers that stopped answering after C(shutdown) (or answer with a new pid, listed in C(restarted)).
  returned: when action is shutdown
  type: list
  elements: str
  sample: [celery@app2]
restarted:
  description: Workers that answer again with a different process id (a service manager restarted them).
  returned: when action is shutdown
  type: list
  elements: str
  sample: []
unknown_workers:
  description: Workers named in O(destination) that did not answer.
  returned: always
  type: list
  elements: str
  sample: []
requeued:
  description:
    - Failed tasks resent (in check mode, that would be resent), oldest failure first, with their new task id.
  returned: when action is requeue_failed
  type: list
  elements: dict
  sample:
    - task_id: 9b1d0c36-0c1a-4b8e-9f4e-2b7f1c7d9a10
      new_task_id: 5e0b8f9e-3c55-5a8b-8e57-6f3b6c1c2d44
      task_name: certificates.tasks.generate_certificate
      args: ["4f1c5a3e-8d2b-4c6a-9e7f-0a1b2c3d4e5f"]
      kwargs: {}
      date_done: "2025-01-31T12:03:44.120000+00:00"
skipped:
  description: Failed tasks matched but not resent, each with the reason.
  returned: when action is requeue_failed
  type: list
  elements: dict
  sample:
    - task_id: 0c6b1e52-8a43-4e0e-b5a5-77f2d1c0b9e3
      task_name: certificates.tasks.generate_certificate
      reason: already requeued as 6d1f0e0a-2f4d-5b1e-9a77-1c2d3e4f5a6b (SUCCESS)
more:
  description: More failed tasks matched than O(limit); run again to requeue the next ones.
  returned: when action is requeue_failed
  type: bool
  sample: false
failed_before:
  description: C(FAILURE) rows in the result table before the purge (every task name).
  returned: when action is purge_failed
  type: int
  sample: 12
purged_count:
  description: Rows deleted (in check mode, that would be).
  returned: when action is purge_failed
  type: int
  sample: 9
failed_after:
  description: C(FAILURE) rows left after the purge (in check mode, the count now).
  returned: when action is purge_failed
  type: int
  sample: 3
purged:
  description: The first 20 tasks deleted (would be in check mode), oldest first.
  returned: when action is purge_failed
  type: list
  elements: dict
  sample:
    - {task_id: 0c6b1e52-8a43-4e0e-b5a5-77f2d1c0b9e3, task_name: certificates.tasks.generate_certificate,
       date_done: "2025-01-24T12:03:44.120000+00:00"}
older_than:
  description: The O(older_than) time as used, in UTC.
  returned: when action is purge_failed and older_than is set
  type: str
  sample: "2025-01-24T12:00:00+00:00"
since:
  description: The O(since) time as used, in UTC.
  returned: when action is requeue_failed and since is set
  type: str
  sample: "2025-01-31T10:00:00+00:00"
waited:
  description: Seconds spent waiting for confirmation, idleness or shutdown.
  returned: always
  type: float
  sample: 4.2
elapsed:
  description: Seconds the whole module took.
  returned: always
  type: float
  sample: 4.3
broker:
  description: The broker URL with its password masked.
  returned: always
  type: str
  sample: "redis://:********@redis1:6379/0"
"""

import ast
import datetime
import json
import time
import traceback
import uuid

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.opsbook.webstack.plugins.module_utils.celery_common import (
    CELERY_IMPORT_ERROR,
    HAS_CELERY,
    UTC,
    BrokerError,
    CeleryBroker,
    common_argument_spec,
    finish,
    parse_since,
    protect,
    safe_url,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.celery_workers import Controller, Failure

try:
    import psycopg
    from psycopg import sql

    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None
except ImportError:
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()

ACTIONS = ["cancel_consumer", "add_consumer", "shutdown", "drain", "requeue_failed", "purge_failed"]
PURGE_LISTED = 20
REQUEUE_NAMESPACE = uuid.NAMESPACE_URL


def argument_spec() -> dict:
    spec = common_argument_spec()
    spec.update(
        action=dict(type="str", required=True, choices=ACTIONS),
        queues=dict(type="list", elements="str"),
        wait_timeout=dict(type="float", default=60.0),
        poll_interval=dict(type="float", default=0.5),
        fail_on_timeout=dict(type="bool", default=True),
        task_names=dict(type="list", elements="str"),
        since=dict(type="str"),
        older_than=dict(type="str"),
        limit=dict(type="int", default=100),
        requeue_queue=dict(type="str"),
        result_db=dict(
            type="dict",
            options=dict(
                host=dict(type="str"),
                port=dict(type="int"),
                user=dict(type="str"),
                password=dict(type="str", no_log=True),
                dbname=dict(type="str"),
                sslmode=dict(type="str", choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
                connect_timeout=dict(type="int", default=10),
                table=dict(type="str", default="django_celery_results_taskresult"),
            ),
        ),
    )
    return spec


# --------------------------------------------------------------------------- requeue


def decode_arguments(raw, content_type: str | None, kind: str):
    """task_args/task_kwargs as django-celery-results stores them: JSON of the argsrepr string (protocol 2),
    or JSON of the arguments themselves (protocol 1). Raises ValueError with the reason."""
    if raw is None:
        raise ValueError(f"no {kind} recorded (is result_extended on?)")
    if content_type and content_type != "application/json":
        raise ValueError(f"{kind} are stored as {content_type}; only application/json can be read")
    value = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(
                f"{kind} were recorded as {value[:80]!r}, which is not a literal (custom or shortened repr)"
            ) from None
    if kind == "args" and isinstance(value, (list, tuple)):
        return list(value)
    if kind == "kwargs" and isinstance(value, dict):
        return value
    raise ValueError(f"{kind} recorded as {type(value).__name__}, not a {'list' if kind == 'args' else 'dict'}")


def requeue_id(task_id: str) -> str:
    return str(uuid.uuid5(REQUEUE_NAMESPACE, f"opsbook:requeue:{task_id}"))


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def read_failed(conninfo: dict, table: str, names, since, limit: int) -> tuple[list[dict], bool, dict]:
    """(failed rows oldest first, more than limit matched, {requeue id: status} of copies already recorded)."""
    identifier = sql.Identifier(*table.split("."))
    where = [sql.SQL("status = 'FAILURE'")]
    values: list = []
    if names:
        where.append(sql.SQL("task_name = ANY(%s)"))
        values.append(list(names))
    if since is not None:
        where.append(sql.SQL("date_done >= %s"))
        values.append(since)
    query = sql.SQL(
        "SELECT task_id, task_name, task_args, task_kwargs, content_type, date_done, worker "
        "FROM {table} WHERE {where} ORDER BY date_done, task_id LIMIT %s"
    ).format(table=identifier, where=sql.SQL(" AND ").join(where))
    with psycopg.connect(**conninfo) as conn:
        conn.read_only = True
        with conn.cursor() as cur:
            cur.execute(query, [*values, limit + 1])
            columns = [c.name for c in cur.description]
            # One value per column (zip(strict=) is Python 3.10+, modules run on 3.9).
            rows = [dict(zip(columns, row)) for row in cur.fetchall()]  # noqa: B905
            more = len(rows) > limit
            rows = rows[:limit]
            copies = {}
            if rows:
                cur.execute(
                    sql.SQL("SELECT task_id, status FROM {table} WHERE task_id = ANY(%s)").format(table=identifier),
                    [[requeue_id(r["task_id"]) for r in rows]],
                )
                copies = dict(cur.fetchall())
        conn.rollback()
    return rows, more, copies


def requeue_failed(module: AnsibleModule, broker: CeleryBroker, result: dict) -> None:
    params = module.params
    if not HAS_PSYCOPG:
        raise Failure(missing_required_lib("psycopg"))
    conninfo, table = result_conninfo(params)
    since = parse_since(params["since"])
    if since is not None:
        result["since"] = since.astimezone(UTC).isoformat()
    if params["limit"] < 1:
        raise Failure("limit must be at least 1")
    try:
        rows, more, copies = read_failed(conninfo, table, params["task_names"], since, params["limit"])
    except psycopg.Error as exc:
        raise Failure(f"cannot read failed tasks from {table}: {exc.__class__.__name__}: {exc}") from None
    result.update(requeued=[], skipped=[], more=more)
    for row in rows:
        entry = {"task_id": row["task_id"], "task_name": row["task_name"]}
        new_id = requeue_id(row["task_id"])
        if new_id in copies:
            result["skipped"].append({**entry, "reason": f"already requeued as {new_id} ({copies[new_id]})"})
            continue
        if not row["task_name"]:
            result["skipped"].append({**entry, "reason": "no task name recorded (is result_extended on?)"})
            continue
        try:
            args = decode_arguments(row["task_args"], row["content_type"], "args")
            kwargs = decode_arguments(row["task_kwargs"], row["content_type"], "kwargs")
        except ValueError as exc:
            result["skipped"].append({**entry, "reason": str(exc)})
            continue
        result["requeued"].append(
            {**entry, "new_task_id": new_id, "args": args, "kwargs": kwargs, "date_done": _iso(row["date_done"])}
        )
    result["changed"] = bool(result["requeued"])
    if module.check_mode:
        return
    for item in result["requeued"]:
        broker.send_task(item["task_name"], item["args"], item["kwargs"], item["new_task_id"], params["requeue_queue"])


def result_conninfo(params: dict) -> tuple[dict, str]:
    """(psycopg connection arguments, table) from result_db."""
    db = dict(params["result_db"] or {})
    table = db.pop("table", None) or "django_celery_results_taskresult"
    conninfo = {k: v for k, v in db.items() if v is not None}
    conninfo.setdefault("application_name", "opsbook.celery_control")
    return conninfo, table


def purge_failed(module: AnsibleModule, result: dict) -> None:
    """DELETE the FAILURE rows (before older_than, of task_names) in one transaction; counts before and after."""
    params = module.params
    if not HAS_PSYCOPG:
        raise Failure(missing_required_lib("psycopg"))
    conninfo, table = result_conninfo(params)
    cutoff = parse_since(params["older_than"], name="older_than")
    if cutoff is not None:
        result["older_than"] = cutoff.astimezone(UTC).isoformat()
    identifier = sql.Identifier(*table.split("."))
    where = [sql.SQL("status = 'FAILURE'")]
    values: list = []
    if params["task_names"]:
        where.append(sql.SQL("task_name = ANY(%s)"))
        values.append(list(params["task_names"]))
    if cutoff is not None:
        where.append(sql.SQL("date_done < %s"))
        values.append(cutoff)
    matched = sql.SQL(" AND ").join(where)
    count_all = sql.SQL("SELECT count(*) FROM {table} WHERE status = 'FAILURE'").format(table=identifier)
    try:
        with psycopg.connect(**conninfo) as conn:
            with conn.cursor() as cur:
                cur.execute(count_all)
                before = cur.fetchone()[0]
                if module.check_mode:
                    cur.execute(
                        sql.SQL("SELECT task_id, task_name, date_done FROM {table} WHERE {where}").format(
                            table=identifier, where=matched
                        ),
                        values,
                    )
                else:
                    cur.execute(
                        sql.SQL("DELETE FROM {table} WHERE {where} RETURNING task_id, task_name, date_done").format(
                            table=identifier, where=matched
                        ),
                        values,
                    )
                rows = sorted(cur.fetchall(), key=lambda r: (r[2] or datetime.datetime.min.replace(tzinfo=UTC), r[0]))
                cur.execute(count_all)
                after = cur.fetchone()[0]
            if module.check_mode:
                conn.rollback()
            else:
                conn.commit()
    except psycopg.Error as exc:
        raise Failure(f"cannot purge failed tasks from {table}: {exc.__class__.__name__}: {exc}") from None
    result.update(
        failed_before=before,
        purged_count=len(rows),
        failed_after=after,
        purged=[
            {"task_id": task_id, "task_name": name, "date_done": _iso(done)}
            for task_id, name, done in rows[:PURGE_LISTED]
        ],
    )
    result["changed"] = bool(rows)


# --------------------------------------------------------------------------- main


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[
            ("action", "cancel_consumer", ["queues"]),
            ("action", "add_consumer", ["queues"]),
            ("action", "shutdown", ["destination"]),
            ("action", "requeue_failed", ["task_names", "since"], True),
            ("action", "purge_failed", ["result_db"]),
        ],
    )
    if not HAS_CELERY:
        module.fail_json(msg=missing_required_lib("celery"), exception=CELERY_IMPORT_ERROR)
    params = module.params
    secrets = protect(module, params["broker_url"], params["broker_transport_options"])
    db_password = (params["result_db"] or {}).get("password")
    if db_password:
        secrets.append(db_password)
    action = params["action"]
    result = {
        "changed": False,
        "action": action,
        "workers": {},
        "unknown_workers": [],
        "waited": 0.0,
        "elapsed": 0.0,
        "broker": safe_url(params["broker_url"]),
    }
    started = time.monotonic()
    broker = CeleryBroker.from_params(params)
    failure = None
    trace = None
    try:
        if action == "purge_failed":
            # Only the result table: the broker and the workers are not involved.
            purge_failed(module, result)
        else:
            broker.connect()
            controller = Controller(module, broker, result)
            if action in ("cancel_consumer", "add_consumer"):
                controller.consumers(action)
            elif action == "drain":
                controller.drain()
            elif action == "shutdown":
                controller.shutdown()
            else:
                requeue_failed(module, broker, result)
    except (Failure, BrokerError, ValueError) as exc:
        failure = str(exc)
    except Exception as exc:
        failure = f"celery_control {action} failed: {exc.__class__.__name__}: {exc}"
        trace = traceback.format_exc()
    finally:
        broker.close()
    finish(module, result, started, failure, trace, secrets)


if __name__ == "__main__":
    main()
