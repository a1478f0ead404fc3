#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rq_inspect
short_description: View RQ workers, queues and job registries; requeue failed jobs; drain and resume workers
version_added: "0.1.0"
description:
  - Reads RQ's state from Redis with no project code, that is workers (state, queues, last heartbeat,
    current job), queue depths, and the started, failed, scheduled, deferred, finished and canceled registries.
  - Reading has no side effect. RQ's own C(count), C(len()), C(get_job_ids()) and C(Worker.all()) clean
    registries up (they move expired started jobs to the failed registry, delete expired entries, and drop
    dead workers from the worker set); this module reads the same keys without that.
  - C(requeue_failed) moves failed jobs back to their queue with RQ's own requeue (by job id, since a
    time, with a limit). C(drain) suspends the workers (C(rq suspend)) and waits until none is busy, then
    returns what was still running at the deadline. C(resume) lifts the suspension.
  - Thresholds (O(min_workers), O(max_queue_depth)) fail the task with a message naming the threshold,
    the value and the workers or queues.
author:
  - opsbook engineers (@opsbook)
options:
  redis_url:
    description:
      - The Redis URL RQ uses (C(redis://:PASSWORD@redis1:6379/0), C(rediss://...), C(unix:///path?db=0)).
      - Never shown in output or error messages.
    type: str
    required: true
  action:
    description:
      - C(inspect) only reads. C(requeue_failed), C(drain) and C(resume) change state.
    type: str
    choices: [inspect, requeue_failed, drain, resume]
    default: inspect
  queues:
    description:
      - Queues to report (and to requeue from, and whose workers to wait for when draining).
      - Omit for every queue RQ knows (the C(rq:queues) set).
    type: list
    elements: str
  list_limit:
    description:
      - How many jobs of each registry to list per queue (counts are always complete).
    type: int
    default: 20
  min_workers:
    description:
      - Fail unless at least this many live workers listen on the reported queues.
    type: int
  max_queue_depth:
    description:
      - Fail when a queue holds more jobs than this. An integer applies to every reported queue; a
        dictionary maps queue names to their own limits.
    type: raw
  job_ids:
    description:
      - For C(requeue_failed), only these failed jobs.
    type: list
    elements: str
  since:
    description:
      - For C(requeue_failed), only jobs that ended at or after this time. An ISO 8601 time
        (C(2025-01-31T12:00:00Z)) or a duration back from now (C(90m), C(2h), C(1d)).
    type: str
  limit:
    description:
      - For C(requeue_failed), at most this many jobs, oldest failure first.
    type: int
    default: 100
  wait_timeout:
    description:
      - For C(drain), seconds to wait until no worker is busy.
    type: float
    default: 60
  poll_interval:
    description:
      - Seconds between two polls while draining.
    type: float
    default: 0.5
  fail_on_timeout:
    description:
      - For C(drain), fail when a worker is still busy at the deadline. With V(false), warn and return
        C(drained=false).
    type: bool
    default: true
  suspend_ttl:
    description:
      - For C(drain), let the suspension expire by itself after this many seconds (a safety net if the
        play never reaches C(resume)). Omit to suspend until C(resume).
    type: int
  connect_timeout:
    description:
      - Seconds to wait for the Redis connection.
    type: float
    default: 5.0
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: C(requeue_failed), C(drain) and C(resume) report what they would do and change nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - Python 3.9 or later with rq (2.x) and redis-py on the host the module runs on, in releases that support that Python
    (rq 2.12 and redis-py 8, which the lab uses, need Python 3.10)
notes:
  - RQ's suspension is global to the Redis database, not per queue - every worker on it stops taking jobs.
  - A worker checks the suspension before it waits for a job. An idle worker already waiting
    (up to its C(worker_ttl) minus 15 seconds, 405 s by default) can still take one job that arrives after
    C(drain); it shows C(state=suspended) once it has noticed. C(drain) waits until no worker is busy.
  - Failed job details (C(exc)) come from RQ's result stream, or the job's C(exc_info) for older jobs;
    job arguments are not decoded (they are pickled, and unpickling would need the project's code).
seealso:
  - module: opsbook.webstack.celery_inspect
  - name: RQ monitoring
    description: The rq info command and what its numbers mean.
    link: https://python-rq.org/docs/monitoring/
"""

EXAMPLES = r"""
- name: RQ | Queues and workers for the monitoring report
  opsbook.webstack.rq_inspect:
    redis_url: "{{ app_redis_url }}"
    min_workers: 1
    max_queue_depth: 1000
  register: rq_register_state

- name: RQ | Requeue transcript jobs that failed in the last hour
  opsbook.webstack.rq_inspect:
    redis_url: "{{ app_redis_url }}"
    action: requeue_failed
    queues: [default]
    since: 1h

- name: RQ | Drain before a deploy (suspend, wait up to 10 minutes for running jobs)
  opsbook.webstack.rq_inspect:
    redis_url: "{{ app_redis_url }}"
    action: drain
    wait_timeout: 600
    suspend_ttl: 3600

- name: RQ | Resume after the deploy
  opsbook.webstack.rq_inspect:
    redis_url: "{{ app_redis_url }}"
    action: resume
"""

RETURN = r"""
workers:
  description:
    - Per live worker (its key exists, so its heartbeat is recent), its state (C(idle), C(busy),
      C(suspended), C(started)), queues, heartbeat, and the current job.
  returned: always
  type: dict
  sample:
    rqworker1:
      state: busy
      queues: [default]
      last_heartbeat: "2025-01-31T12:03:44.120000+00:00"
      heartbeat_age: 1.2
      birth: "2025-01-31T08:00:00+00:00"
      pid: 4242
      hostname: app1
      current_job: {id: 9b1d0c36, description: "transcripts.generate(123)", started_at: "2025-01-31T12:03:40+00:00"}
      successful_job_count: 120
      failed_job_count: 2
      total_working_time: 351.2
worker_names:
  description: Live workers listening on the reported queues, sorted.
  returned: always
  type: list
  elements: str
  sample: [rqworker1]
stale_workers:
  description: Worker keys still listed in C(rq:workers) whose worker hash has expired (dead workers RQ has
    not cleaned up yet). Left as they are.
  returned: always
  type: list
  elements: str
  sample: []
queues:
  description:
    - Per queue, C(depth) (jobs waiting) and the size of each registry, with up to O(list_limit) jobs listed.
  returned: always
  type: dict
  sample:
    default:
      depth: 3
      started: 1
      failed: 2
      scheduled: 0
      deferred: 0
      finished: 118
      canceled: 0
      jobs:
        started: [9b1d0c36]
        failed:
          - id: 0c6b1e52
            description: "transcripts.generate(7)"
            ended_at: "2025-01-31T11:58:01+00:00"
            exc: "ValueError: no such student"
        scheduled: []
        deferred: []
suspended:
  description: RQ workers are suspended (after the action).
  returned: always
  type: bool
  sample: false
requeued:
  description: Failed jobs moved back to their queue (in check mode, that would be).
  returned: when action is requeue_failed
  type: list
  elements: dict
  sample:
    - {id: 0c6b1e52, queue: default, description: "transcripts.generate(7)", ended_at: "2025-01-31T11:58:01+00:00"}
skipped:
  description: Failed jobs matched but not requeued, with the reason.
  returned: when action is requeue_failed
  type: list
  elements: dict
  sample: []
more:
  description: More failed jobs matched than O(limit).
  returned: when action is requeue_failed
  type: bool
  sample: false
drained:
  description: No worker was busy before the deadline (null in check mode).
  returned: when action is drain
  type: bool
  sample: true
still_running:
  description: Per busy worker, its current job at the end of the wait (in check mode, now).
  returned: when action is drain
  type: dict
  sample:
    rqworker1: {id: 9b1d0c36, description: "transcripts.generate(123)", started_at: "2025-01-31T12:03:40+00:00"}
thresholds:
  description: Thresholds checked and failure messages.
  returned: always
  type: dict
  sample: {checked: [min_workers], failed: []}
waited:
  description: Seconds spent waiting (drain).
  returned: always
  type: float
  sample: 0.0
elapsed:
  description: Seconds the whole module took.
  returned: always
  type: float
  sample: 0.012
"""

import base64
import datetime
import time
import traceback
import zlib

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.opsbook.webstack.plugins.module_utils.celery_common import (
    UTC,
    broker_location,
    check_queue_depths,
    finish,
    parse_depth_limits,
    parse_since,
    protect,
    safe_url,
)

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    from rq import suspension
    from rq.queue import Queue
    from rq.registry import (
        CanceledJobRegistry,
        DeferredJobRegistry,
        FailedJobRegistry,
        FinishedJobRegistry,
        ScheduledJobRegistry,
        StartedJobRegistry,
    )
    from rq.worker import Worker

    HAS_RQ = True
    RQ_IMPORT_ERROR = None
except ImportError:
    HAS_RQ = False
    RQ_IMPORT_ERROR = traceback.format_exc()

REGISTRIES = ("started", "failed", "scheduled", "deferred", "finished", "canceled")
LISTED = ("started", "failed", "scheduled", "deferred")


class Failure(Exception):
    """Stop with this message; the result gathered so far goes with it."""


def argument_spec() -> dict:
    return dict(
        redis_url=dict(type="str", required=True, no_log=True),
        action=dict(type="str", choices=["inspect", "requeue_failed", "drain", "resume"], default="inspect"),
        queues=dict(type="list", elements="str"),
        list_limit=dict(type="int", default=20),
        min_workers=dict(type="int"),
        max_queue_depth=dict(type="raw"),
        job_ids=dict(type="list", elements="str"),
        since=dict(type="str"),
        limit=dict(type="int", default=100),
        wait_timeout=dict(type="float", default=60.0),
        poll_interval=dict(type="float", default=0.5),
        fail_on_timeout=dict(type="bool", default=True),
        suspend_ttl=dict(type="int"),
        connect_timeout=dict(type="float", default=5.0),
    )


def _text(value) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _time(value) -> datetime.datetime | None:
    """RQ's utcformat ("2025-01-31T12:03:44.120000Z"), as an aware datetime."""
    text = _text(value)
    if not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


class RQState:
    """Reads RQ's keys directly (no cleanup), writes only through RQ's own API."""

    def __init__(self, conn) -> None:
        self.conn = conn

    # ---- reading

    def queue_names(self, wanted: list[str] | None) -> list[str]:
        if wanted:
            return sorted(set(wanted))
        prefix = Queue.redis_queue_namespace_prefix
        names = (_text(k) for k in self.conn.smembers(Queue.redis_queues_keys))
        return sorted(n[len(prefix) :] for n in names if n and n.startswith(prefix))

    def job(self, job_id: str) -> dict:
        fields = ("description", "origin", "status", "enqueued_at", "started_at", "ended_at")
        values = self.conn.hmget(f"rq:job:{job_id}", fields)
        info = {"id": job_id}
        # HMGET answers one value per field (zip(strict=) is Python 3.10+, modules run on 3.9).
        for name, value in zip(fields, values):  # noqa: B905
            info[name] = _text(value)
        for name in ("enqueued_at", "started_at", "ended_at"):
            info[name] = _iso(_time(info[name]))
        info["exists"] = any(v is not None for v in values)
        return info

    def last_error(self, job_id: str) -> str | None:
        """The last line of the latest failure: the result stream (RQ 1.12+), else the job's exc_info."""
        text = None
        try:
            entries = self.conn.xrevrange(f"rq:results:{job_id}", count=1)
        except redis.ResponseError:
            entries = []
        if entries:
            payload = {_text(k): v for k, v in entries[0][1].items()}
            raw = payload.get("exc_string")
            if raw:
                try:
                    text = zlib.decompress(base64.b64decode(raw)).decode("utf-8", "replace")
                except (ValueError, zlib.error):
                    text = _text(raw)
        if text is None:
            raw = self.conn.hget(f"rq:job:{job_id}", "exc_info")
            if raw:
                try:
                    text = zlib.decompress(raw).decode("utf-8", "replace")
                except zlib.error:
                    text = _text(raw)
        if not text:
            return None
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else None

    def workers(self, queues: list[str] | None) -> tuple[dict, list[str]]:
        """({name: info} of live workers on these queues, stale worker names)."""
        prefix = Worker.redis_worker_namespace_prefix
        keys = sorted(_text(k) for k in self.conn.smembers(Worker.redis_workers_keys))
        with self.conn.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            hashes = pipe.execute()
        now = datetime.datetime.now(UTC)
        workers, stale = {}, []
        for key, raw in zip(keys, hashes):  # noqa: B905 - the pipeline answers once per command
            name = key[len(prefix) :] if key.startswith(prefix) else key
            if not raw:
                stale.append(name)
                continue
            data = {_text(k): _text(v) for k, v in raw.items()}
            worker_queues = [q for q in (data.get("queues") or "").split(",") if q]
            if queues and not set(worker_queues) & set(queues):
                continue
            heartbeat = _time(data.get("last_heartbeat"))
            job_id = data.get("current_job") or None
            current = None
            if job_id:
                job = self.job(job_id)
                current = {k: job[k] for k in ("id", "description", "origin", "started_at")}
            workers[name] = {
                "state": data.get("state") or "?",
                "queues": worker_queues,
                "last_heartbeat": _iso(heartbeat),
                "heartbeat_age": round((now - heartbeat).total_seconds(), 3) if heartbeat else None,
                "birth": _iso(_time(data.get("birth"))),
                "pid": int(data["pid"]) if data.get("pid") else None,
                "hostname": data.get("hostname"),
                "current_job": current,
                "successful_job_count": int(data.get("successful_job_count") or 0),
                "failed_job_count": int(data.get("failed_job_count") or 0),
                "total_working_time": float(data.get("total_working_time") or 0),
            }
        return workers, stale

    def registry(self, kind: str, queue: str):
        cls = {
            "started": StartedJobRegistry,
            "failed": FailedJobRegistry,
            "scheduled": ScheduledJobRegistry,
            "deferred": DeferredJobRegistry,
            "finished": FinishedJobRegistry,
            "canceled": CanceledJobRegistry,
        }[kind]
        return cls(queue, connection=self.conn)

    def queue(self, name: str, list_limit: int) -> dict:
        info = {"depth": int(self.conn.llen(f"{Queue.redis_queue_namespace_prefix}{name}"))}
        jobs = {}
        for kind in REGISTRIES:
            registry = self.registry(kind, name)
            info[kind] = int(registry.get_job_count(cleanup=False))
            if kind not in LISTED:
                continue
            ids = registry.get_job_ids(0, list_limit - 1, cleanup=False) if list_limit > 0 else []
            if kind == "failed":
                jobs[kind] = []
                for job_id in ids:
                    job = self.job(job_id)
                    jobs[kind].append(
                        {
                            "id": job_id,
                            "description": job["description"],
                            "ended_at": job["ended_at"],
                            "exc": self.last_error(job_id),
                        }
                    )
            elif kind == "scheduled":
                jobs[kind] = []
                for job_id in ids:
                    score = self.conn.zscore(registry.key, job_id)
                    at = datetime.datetime.fromtimestamp(score, UTC) if score else None
                    jobs[kind].append({"id": job_id, "at": _iso(at)})
            else:
                jobs[kind] = list(ids)
        info["jobs"] = jobs
        return info

    def suspended(self) -> bool:
        return bool(self.conn.exists(suspension.WORKERS_SUSPENDED))

    # ---- changing

    def failed_candidates(self, queues: list[str], job_ids, since, limit: int):
        candidates = []
        for name in queues:
            registry = self.registry("failed", name)
            for job_id in registry.get_job_ids(cleanup=False):
                if job_ids and job_id not in job_ids:
                    continue
                job = self.job(job_id)
                ended = _time(job["ended_at"])
                if since is not None and (ended is None or ended < since):
                    continue
                candidates.append((ended or datetime.datetime.min.replace(tzinfo=UTC), name, job))
        candidates.sort(key=lambda item: (item[0], item[2]["id"]))
        return candidates[:limit], len(candidates) > limit


# --------------------------------------------------------------------------- actions


def report(state: RQState, params: dict, result: dict) -> None:
    names = state.queue_names(params["queues"])
    workers, stale = state.workers(params["queues"])
    result.update(
        workers=workers,
        worker_names=sorted(workers),
        stale_workers=stale,
        queues={name: state.queue(name, params["list_limit"]) for name in names},
        suspended=state.suspended(),
    )


def check_thresholds(params: dict, result: dict) -> None:
    checked, failed = [], []
    if params["min_workers"] is not None:
        checked.append("min_workers")
        names = result["worker_names"]
        if len(names) < params["min_workers"]:
            on = f" on {', '.join(params['queues'])}" if params["queues"] else ""
            message = (
                f"min_workers={params['min_workers']}: {len(names)} live worker(s){on} ({', '.join(names) or 'none'})"
            )
            if result["stale_workers"]:
                message += "; registered but expired: " + ", ".join(result["stale_workers"])
            failed.append(message)
    if params["max_queue_depth"] is not None:
        checked.append("max_queue_depth")
        default_limit, limits = parse_depth_limits(params["max_queue_depth"])
        failed += check_queue_depths(result["queues"], default_limit, limits)
    result["thresholds"] = {"checked": checked, "failed": failed}
    if failed:
        raise Failure("; ".join(failed))


def requeue_failed(module: AnsibleModule, state: RQState, result: dict) -> None:
    params = module.params
    if params["limit"] < 1:
        raise Failure("limit must be at least 1")
    since = parse_since(params["since"])
    if since is not None:
        result["since"] = since.isoformat()
    names = state.queue_names(params["queues"])
    candidates, more = state.failed_candidates(names, params["job_ids"], since, params["limit"])
    result.update(requeued=[], skipped=[], more=more)
    for _when, queue, job in candidates:
        entry = {"id": job["id"], "queue": queue, "description": job["description"], "ended_at": job["ended_at"]}
        if not job["exists"]:
            result["skipped"].append({**entry, "reason": "the job's data has expired or was deleted"})
            continue
        if module.check_mode:
            result["requeued"].append(entry)
            continue
        try:
            state.registry("failed", queue).requeue(job["id"])
        except Exception as exc:  # NoSuchJobError, InvalidJobOperation (another run requeued it first), ...
            result["skipped"].append({**entry, "reason": f"{exc.__class__.__name__}: {exc}".rstrip(": ")})
            continue
        result["requeued"].append(entry)
    result["changed"] = bool(result["requeued"])


def drain(module: AnsibleModule, state: RQState, result: dict) -> None:
    params = module.params
    was_suspended = state.suspended()
    result["changed"] = not was_suspended

    def busy() -> dict:
        workers, _stale = state.workers(params["queues"])
        return {
            name: info["current_job"] or {"id": None}
            for name, info in workers.items()
            if info["state"] == "busy" or info["current_job"]
        }

    if module.check_mode:
        result.update(still_running=busy(), drained=None)
        return
    if not was_suspended:
        suspension.suspend(state.conn, params["suspend_ttl"])
    started = time.monotonic()
    deadline = started + params["wait_timeout"]
    while True:
        running = busy()
        result["still_running"] = running
        if not running:
            result["drained"] = True
            result["waited"] = round(time.monotonic() - started, 3)
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(max(0.0, min(params["poll_interval"], remaining)))
    result["drained"] = False
    result["waited"] = round(time.monotonic() - started, 3)
    parts = [f"{name}: job {job.get('id')} ({job.get('description')})" for name, job in sorted(running.items())]
    message = (
        f"drain: gave up after {params['wait_timeout']:g}s; still busy: {'; '.join(parts)}. "
        "The workers stay suspended; run action=resume to undo."
    )
    if params["fail_on_timeout"]:
        raise Failure(message)
    module.warn(message)


def resume(module: AnsibleModule, state: RQState, result: dict) -> None:
    result["changed"] = state.suspended()
    if result["changed"] and not module.check_mode:
        suspension.resume(state.conn)


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_RQ:
        module.fail_json(msg=missing_required_lib("rq"), exception=RQ_IMPORT_ERROR)
    params = module.params
    secrets = protect(module, params["redis_url"])
    result = {
        "changed": False,
        "action": params["action"],
        "workers": {},
        "worker_names": [],
        "stale_workers": [],
        "queues": {},
        "suspended": None,
        "thresholds": {"checked": [], "failed": []},
        "waited": 0.0,
        "elapsed": 0.0,
        "redis": safe_url(params["redis_url"]),
    }
    started = time.monotonic()
    failure = trace = None
    conn = None
    try:
        parse_depth_limits(params["max_queue_depth"])
        conn = redis.Redis.from_url(
            params["redis_url"],
            socket_connect_timeout=params["connect_timeout"],
            socket_timeout=max(params["connect_timeout"], 10.0),
            # redis-py retries a failed command three times with backoff by default: one quick retry.
            retry=Retry(NoBackoff(), 1),
        )
        try:
            conn.ping()
        except redis.RedisError as exc:
            raise Failure(
                f"cannot connect to Redis at {broker_location(params['redis_url'])}: {exc.__class__.__name__}: {exc}"
            ) from None
        state = RQState(conn)
        action = params["action"]
        action_failure = None
        try:
            if action == "requeue_failed":
                requeue_failed(module, state, result)
            elif action == "drain":
                drain(module, state, result)
            elif action == "resume":
                resume(module, state, result)
        except Failure as exc:
            action_failure = str(exc)
        # The state after the action, also when it failed: what is suspended, running, queued.
        report(state, params, result)
        if action_failure:
            raise Failure(action_failure)
        check_thresholds(params, result)
    except (Failure, ValueError) as exc:
        failure = str(exc)
    except Exception as exc:
        failure = f"rq_inspect {params['action']} failed: {exc.__class__.__name__}: {exc}"
        trace = traceback.format_exc()
    finally:
        if conn is not None:
            conn.close()
    finish(module, result, started, failure, trace, secrets)


if __name__ == "__main__":
    main()
