#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rq_control
short_description: Change what RQ workers do - requeue or purge failed jobs, drain and resume
version_added: "0.2.0"
description:
  - The changing side of M(opsbook.webstack.rq_inspect), as M(opsbook.webstack.celery_control) is for
    Celery. Writes go through RQ's own API; no project code is needed on the host.
  - C(requeue_failed) moves failed jobs back to their queue with RQ's own requeue (by job id, since a
    time, with a limit, oldest failure first).
  - C(purge_failed) deletes failed jobs of the named queues (their entry in the failed job registry, the
    job itself and its results), optionally only those that failed before O(older_than) or only
    O(job_ids), and returns the count before and after.
  - C(drain) suspends the workers (C(rq suspend)) and waits until none is busy, then returns what was
    still running at the deadline. C(resume) lifts the suspension.
  - After the action the module returns the same state as M(opsbook.webstack.rq_inspect) (workers,
    queues, registries, suspension), read without RQ's cleanup side effects.
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
      - What to do. See the description.
    type: str
    required: true
    choices: [requeue_failed, purge_failed, drain, resume]
  queues:
    description:
      - Queues to requeue from, to purge (required for C(purge_failed)), whose workers to wait for when
        draining, and to report after the action.
      - Omit for every queue RQ knows (the C(rq:queues) set), except with C(purge_failed).
    type: list
    elements: str
  list_limit:
    description:
      - How many jobs of each registry to list per queue in the report, and how many purged jobs to
        list in RV(purged) (counts are always complete).
    type: int
    default: 20
  job_ids:
    description:
      - For C(requeue_failed) and C(purge_failed), only these failed jobs.
    type: list
    elements: str
  since:
    description:
      - For C(requeue_failed), only jobs that ended at or after this time. An ISO 8601 time
        (C(2025-01-31T12:00:00Z)) or a duration back from now (C(90m), C(2h), C(1d)).
    type: str
  older_than:
    description:
      - For C(purge_failed), only jobs that failed before this time. A duration back from now
        (C(90m), C(2h), C(7d)) or an ISO 8601 time. Omit to purge every failed job of O(queues).
      - A failed job whose data has expired has no failure time; with O(older_than) it is kept and
        listed in RV(skipped).
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
    details: Every action reads the same state and reports what it would do (the jobs it would requeue or
      purge, the count that would remain, the workers still busy) and changes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - Python 3.9 or later with rq (2.x) and redis-py on the host the module runs on, in releases that support that Python
    (rq 2.12 and redis-py 8, which the lab uses, need Python 3.10)
notes:
  - The module does not ask for a confirmation; the playbook that runs C(purge_failed) should
    (C(playbooks/celery.yml) wants C(celery_purge_confirm) equal to the queue names).
  - RQ's suspension is global to the Redis database, not per queue - every worker on it stops taking jobs.
  - A worker checks the suspension before it waits for a job. An idle worker already waiting
    (up to its C(worker_ttl) minus 15 seconds, 405 s by default) can still take one job that arrives after
    C(drain); it shows C(state=suspended) once it has noticed. C(drain) waits until no worker is busy.
  - A failed job that a worker or another run requeues or deletes while C(purge_failed) runs is left
    alone and not counted as purged.
seealso:
  - module: opsbook.webstack.rq_inspect
  - module: opsbook.webstack.celery_control
  - name: RQ job registries
    description: The failed job registry and what RQ keeps there.
    link: https://python-rq.org/docs/job_registries/
"""

EXAMPLES = r"""
- name: RQ | Requeue transcript jobs that failed in the last hour
  opsbook.webstack.rq_control:
    redis_url: "{{ app_redis_url }}"
    action: requeue_failed
    queues: [default]
    since: 1h

- name: RQ | Delete the failed jobs of the default queue older than a week
  opsbook.webstack.rq_control:
    redis_url: "{{ app_redis_url }}"
    action: purge_failed
    queues: [default]
    older_than: 7d
  register: rq_register_purge

- name: RQ | Drain before a deploy (suspend, wait up to 10 minutes for running jobs)
  opsbook.webstack.rq_control:
    redis_url: "{{ app_redis_url }}"
    action: drain
    wait_timeout: 600
    suspend_ttl: 3600

- name: RQ | Resume after the deploy
  opsbook.webstack.rq_control:
    redis_url: "{{ app_redis_url }}"
    action: resume
"""

RETURN = r"""
action:
  description: The action run.
  returned: always
  type: str
  sample: purge_failed
workers:
  description: Live workers after the action, as M(opsbook.webstack.rq_inspect) returns them.
  returned: always
  type: dict
  sample: {}
worker_names:
  description: Live workers listening on O(queues), sorted.
  returned: always
  type: list
  elements: str
  sample: [rqworker1]
stale_workers:
  description: Worker keys whose worker hash has expired, left as they are.
  returned: always
  type: list
  elements: str
  sample: []
queues:
  description: Per queue, its depth and registries after the action, as M(opsbook.webstack.rq_inspect) returns them.
  returned: always
  type: dict
  sample: {default: {depth: 0, started: 0, failed: 0, scheduled: 0, deferred: 0, finished: 12, canceled: 0}}
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
  description: Failed jobs matched but not requeued (or not purged), with the reason.
  returned: when action is requeue_failed or purge_failed
  type: list
  elements: dict
  sample: []
more:
  description: More failed jobs matched than O(limit).
  returned: when action is requeue_failed
  type: bool
  sample: false
failed_before:
  description: Failed jobs in the failed job registries of O(queues) before the purge.
  returned: when action is purge_failed
  type: int
  sample: 12
purged_count:
  description: Failed jobs deleted (in check mode, that would be).
  returned: when action is purge_failed
  type: int
  sample: 9
failed_after:
  description: Failed jobs left in the registries of O(queues) after the purge (in check mode, the count now).
  returned: when action is purge_failed
  type: int
  sample: 3
purge:
  description: Per queue, failed jobs before, purged (would be in check mode) and after.
  returned: when action is purge_failed
  type: dict
  sample: {default: {before: 12, purged: 9, after: 3}}
purged:
  description: The first O(list_limit) jobs deleted (would be in check mode), oldest failure first.
  returned: when action is purge_failed
  type: list
  elements: dict
  sample:
    - {id: 0c6b1e52, queue: default, description: "transcripts.generate(7)", ended_at: "2025-01-24T11:58:01+00:00"}
older_than:
  description: The O(older_than) time as used, in UTC.
  returned: when action is purge_failed and older_than is set
  type: str
  sample: "2025-01-24T12:00:00+00:00"
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

import datetime
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.opsbook.webstack.plugins.module_utils.celery_common import UTC, parse_since
from ansible_collections.opsbook.webstack.plugins.module_utils.celery_rq import (
    HAS_RQ,
    RQ_IMPORT_ERROR,
    Failure,
    common_argument_spec,
    parse_rq_time,
    run,
)

try:
    from rq import suspension
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.results import Result
except ImportError:  # main() reports it with missing_required_lib
    pass

ACTIONS = ["requeue_failed", "purge_failed", "drain", "resume"]


def argument_spec() -> dict:
    spec = common_argument_spec()
    spec.update(
        action=dict(type="str", required=True, choices=ACTIONS),
        job_ids=dict(type="list", elements="str"),
        since=dict(type="str"),
        older_than=dict(type="str"),
        limit=dict(type="int", default=100),
        wait_timeout=dict(type="float", default=60.0),
        poll_interval=dict(type="float", default=0.5),
        fail_on_timeout=dict(type="bool", default=True),
        suspend_ttl=dict(type="int"),
    )
    return spec


def requeue_failed(module: AnsibleModule, state, result: dict) -> None:
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


def purge_failed(module: AnsibleModule, state, result: dict) -> None:
    """Delete failed jobs of the named queues (registry entry, job hash, results), oldest failure first."""
    params = module.params
    queues = sorted(set(params["queues"] or []))
    if not queues:
        raise Failure("purge_failed needs queues: the queues whose failed jobs are deleted (none given)")
    cutoff = parse_since(params["older_than"], name="older_than")
    if cutoff is not None:
        result["older_than"] = cutoff.astimezone(UTC).isoformat()
    wanted = set(params["job_ids"] or [])
    purge, purged, skipped = {}, [], []
    for queue in queues:
        registry = state.registry("failed", queue)
        ids = registry.get_job_ids(cleanup=False)
        matched = []
        for job_id in ids:
            if wanted and job_id not in wanted:
                continue
            job = state.job(job_id)
            ended = parse_rq_time(job["ended_at"])
            entry = {"id": job_id, "queue": queue, "description": job["description"], "ended_at": job["ended_at"]}
            if cutoff is not None:
                if ended is None:
                    skipped.append({**entry, "reason": "no failure time recorded (the job's data has expired)"})
                    continue
                if ended >= cutoff:
                    continue
            matched.append((ended or datetime.datetime.min.replace(tzinfo=UTC), entry, job["exists"]))
        matched.sort(key=lambda item: (item[0], item[1]["id"]))
        done = 0
        for _ended, entry, exists in matched:
            if not module.check_mode:
                # ZREM first: whoever removes the entry owns the job (a requeue or another purge racing us).
                if not state.conn.zrem(registry.key, entry["id"]):
                    skipped.append({**entry, "reason": "no longer in the failed job registry (requeued or deleted)"})
                    continue
                if exists:
                    try:
                        job = Job.fetch(entry["id"], connection=state.conn)
                    except NoSuchJobError:
                        job = None
                    if job is not None:
                        Result.delete_all(job)
                        job.delete()
            done += 1
            if len(purged) < params["list_limit"]:
                purged.append(entry)
        # In check mode nothing was deleted: the count after is the count now.
        after = len(ids) if module.check_mode else int(registry.get_job_count(cleanup=False))
        purge[queue] = {"before": len(ids), "purged": done, "after": after}
    result.update(
        purge=purge,
        failed_before=sum(q["before"] for q in purge.values()),
        purged_count=sum(q["purged"] for q in purge.values()),
        failed_after=sum(q["after"] for q in purge.values()),
        purged=purged,
        skipped=skipped,
    )
    result["changed"] = result["purged_count"] > 0


def drain(module: AnsibleModule, state, result: dict) -> None:
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


def resume(module: AnsibleModule, state, result: dict) -> None:
    result["changed"] = state.suspended()
    if result["changed"] and not module.check_mode:
        suspension.resume(state.conn)


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[("action", "purge_failed", ["queues"])],
    )
    if not HAS_RQ:
        module.fail_json(msg=missing_required_lib("rq"), exception=RQ_IMPORT_ERROR)
    actions = {"requeue_failed": requeue_failed, "purge_failed": purge_failed, "drain": drain, "resume": resume}
    run(module, actions[module.params["action"]], waited=0.0)


if __name__ == "__main__":
    main()
