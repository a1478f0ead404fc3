#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: celery_inspect
short_description: Read-only view of Celery workers and queues through the broker, with thresholds
version_added: "0.1.0"
description:
  - Asks Celery workers, through the broker, what they are doing (ping, active, reserved, scheduled,
    stats, registered tasks, active queues) and measures queue depths, with a bare Celery app on the
    broker URL. No project code is needed on the host.
  - A worker that does not answer is C(unknown), never idle and never healthy.
  - With O(destination), every broadcast returns as soon as those workers answered (a few
    milliseconds on a reused connection) instead of waiting the whole O(timeout).
    Without it, the first broadcast (ping) waits O(timeout) to find out who is there; the
    following ones are addressed to the workers that answered.
  - Redis queue depth counts every priority sub-queue (C(queue), C(queue\x06\x163), ...) under the
    key prefix and separator given in O(broker_transport_options). RabbitMQ depth is read with a
    passive declare (ready messages); a queue that does not exist has depth 0.
  - Thresholds (O(min_workers), O(expect_queues), O(max_queue_depth), O(max_task_runtime)) fail the
    task with a message naming the threshold, the value, and the workers or queues involved.
  - O(wait_for) polls until workers are up or idle, and fails at the deadline saying what it was
    still waiting for.
author:
  - opsbook engineers (@opsbook)
options:
  collect:
    description:
      - What to ask each worker. C(ping) is always asked (it tells who is there).
      - C(stats) and C(registered) are the largest replies; leave them out for a fast check.
    type: list
    elements: str
    choices: [ping, active, reserved, scheduled, stats, registered, active_queues]
    default: [ping, active, reserved, scheduled, stats, registered, active_queues]
  queues:
    description:
      - Queues to measure, whether or not a worker consumes them (a queue nobody consumes is the
        one that fills up). Queues named in O(expect_queues) and O(max_queue_depth), and the
        queues the workers consume (when C(active_queues) is collected), are measured too.
    type: list
    elements: str
    default: []
  min_workers:
    description:
      - Fail unless at least this many workers answered (of O(destination) when given).
    type: int
  expect_queues:
    description:
      - Fail unless each of these queues is consumed by at least one worker that answered.
      - Implies collecting C(active_queues).
    type: list
    elements: str
    default: []
  max_queue_depth:
    description:
      - Fail when a queue holds more messages than this.
      - An integer applies to every measured queue; a dictionary maps queue names to their own
        limits (and adds those queues to the measured ones).
    type: raw
  max_task_runtime:
    description:
      - Fail when an active task has been running longer than this many seconds (a stuck task).
      - Implies collecting C(active).
    type: float
  wait_for:
    description:
      - C(workers) waits until every worker in O(destination) answers, or without O(destination)
        until O(min_workers) (default 1) answer.
      - C(idle) waits until the workers (O(destination), or those that answer) have no active and
        no reserved task. A worker that does not answer is not idle.
      - Thresholds are checked after the wait.
    type: str
    choices: [workers, idle]
  wait_timeout:
    description:
      - Deadline in seconds for O(wait_for).
    type: float
    default: 60
  poll_interval:
    description:
      - Seconds between two polls of O(wait_for).
    type: float
    default: 0.5
extends_documentation_fragment:
  - opsbook.webstack.celery
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Depth is the number of messages waiting in the broker. Messages a worker has prefetched are
    not in it; they are the worker's C(reserved) tasks.
  - Thresholds and O(wait_for) see only what the workers answer within O(timeout); raise it for
    busy workers on a slow network.
seealso:
  - module: opsbook.webstack.celery_control
  - module: opsbook.webstack.rq_inspect
  - name: Celery monitoring guide
    description: The inspect commands this module sends.
    link: https://docs.celeryq.dev/en/stable/userguide/monitoring.html
"""

EXAMPLES = r"""
- name: CELERY | Are the two workers up and consuming?
  opsbook.webstack.celery_inspect:
    broker_url: "{{ app_broker_url }}"
    destination: [celery@app1, celery@app2]
    collect: [ping, active, active_queues]
    min_workers: 2
    expect_queues: [celery, certificates]
  check_mode: false
  register: celery_register_inspect

- name: CELERY | Monitoring thresholds from the runbook (queue depth > 1000 is critical)
  opsbook.webstack.celery_inspect:
    broker_url: "{{ app_broker_url }}"
    queues: [celery, certificates]
    max_queue_depth:
      celery: 1000
      certificates: 200
    max_task_runtime: 1800
    broker_transport_options:
      global_keyprefix: "journal:"

- name: CELERY | Wait for the new workers after a restart
  opsbook.webstack.celery_inspect:
    broker_url: "{{ app_broker_url }}"
    destination: "{{ groups['worker'] | map('regex_replace', '^', 'celery@') | list }}"
    collect: [ping]
    wait_for: workers
    wait_timeout: 120

- name: CELERY | Wait until the workers on this host have nothing to do
  opsbook.webstack.celery_inspect:
    broker_url: "{{ app_broker_url }}"
    destination: ["celery@{{ ansible_facts['hostname'] }}"]
    collect: [ping, active, reserved]
    wait_for: idle
    wait_timeout: 600
"""

RETURN = r"""
workers:
  description:
    - Per worker node name. C(status) is C(ok) when the worker answered the ping and C(unknown) when it
      did not (then every other key is null). A section the worker did not answer in time is null and
      listed in C(unanswered).
    - C(idle) is true only when the worker answered both C(active) and C(reserved) with empty lists.
    - Active tasks carry C(runtime), the seconds since they started.
  returned: always
  type: dict
  sample:
    celery@app1:
      status: ok
      ping: pong
      idle: false
      active:
        - id: 3f2c1e9a-5b7d-4c1e-9a3b-1f2e3d4c5b6a
          name: articles.tasks.slow_task
          args: [30]
          kwargs: {}
          time_start: 1732262400.12
          runtime: 12.4
          worker_pid: 4242
          acknowledged: true
          hostname: celery@app1
      reserved: []
      scheduled: []
      active_queues: [celery, certificates]
      registered: [articles.tasks.slow_task, certificates.tasks.generate_certificate]
      stats: {pid: 4240, pool: {max-concurrency: 2}}
      unanswered: []
    celery@app2:
      status: unknown
      ping: null
      idle: null
worker_names:
  description: Workers that answered the ping, sorted.
  returned: always
  type: list
  elements: str
  sample: [celery@app1]
unknown_workers:
  description: Workers named in O(destination) that did not answer. Unknown, not down and not idle.
  returned: always
  type: list
  elements: str
  sample: [celery@app2]
idle:
  description:
    - True when at least one worker answered and every expected worker is idle; false when any worker has
      active or reserved tasks; null when that cannot be known (a worker did not answer, or C(active) and
      C(reserved) were not collected).
  returned: always
  type: bool
  sample: false
queues:
  description:
    - Per measured queue. C(depth) is the number of waiting messages. C(consumers) lists the workers that
      answered and consume the queue (null when C(active_queues) was not collected).
    - Redis adds C(by_priority) (messages per priority step) and C(keys) (the Redis lists counted).
      AMQP adds C(broker_consumers), the consumer count the broker reports.
    - C(exists) is false for a queue the broker does not have (its depth is 0).
  returned: always
  type: dict
  sample:
    celery:
      depth: 12
      by_priority: {"0": 10, "3": 0, "6": 2, "9": 0}
      keys: ["celery", "celery\u0006\u00163", "celery\u0006\u00166", "celery\u0006\u00169"]
      exists: true
      consumers: [celery@app1]
thresholds:
  description: The thresholds checked and the failure messages (the task fails when C(failed) is not empty).
  returned: always
  type: dict
  sample:
    checked: [min_workers, expect_queues, max_queue_depth]
    failed: ["min_workers=2: 1 of 2 workers answered within 1s (celery@app1); no reply from celery@app2"]
waited:
  description: Seconds spent in O(wait_for) (0 without it).
  returned: always
  type: float
  sample: 2.31
elapsed:
  description: Seconds the whole module took, connection included.
  returned: always
  type: float
  sample: 0.021
broker:
  description: The broker URL with its password masked.
  returned: always
  type: str
  sample: "redis://:********@redis1:6379/0"
transport:
  description: The kombu transport in use (C(redis), C(amqp), ...).
  returned: always
  type: str
  sample: redis
"""

import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.opsbook.webstack.plugins.module_utils.celery_common import (
    CELERY_IMPORT_ERROR,
    HAS_CELERY,
    SECTIONS,
    BrokerError,
    CeleryBroker,
    check_queue_depths,
    common_argument_spec,
    describe_task,
    parse_depth_limits,
    protect,
    redact,
    safe_url,
)


def argument_spec() -> dict:
    spec = common_argument_spec()
    spec.update(
        collect=dict(type="list", elements="str", choices=list(SECTIONS), default=list(SECTIONS)),
        queues=dict(type="list", elements="str", default=[]),
        min_workers=dict(type="int"),
        expect_queues=dict(type="list", elements="str", default=[]),
        max_queue_depth=dict(type="raw"),
        max_task_runtime=dict(type="float"),
        wait_for=dict(type="str", choices=["workers", "idle"]),
        wait_timeout=dict(type="float", default=60.0),
        poll_interval=dict(type="float", default=0.5),
    )
    return spec


def _sections(params: dict) -> list[str]:
    wanted = set(params["collect"]) | {"ping"}
    if params["expect_queues"]:
        wanted.add("active_queues")
    if params["max_task_runtime"] is not None:
        wanted.add("active")
    return [s for s in SECTIONS if s in wanted]


def _normalize(section: str, reply, now: float):
    if section == "active_queues":
        return sorted(q.get("name") for q in reply or [])
    if section == "active":
        tasks = []
        for task in reply or []:
            task = dict(task)
            if task.get("time_start"):
                task["runtime"] = round(max(0.0, now - float(task["time_start"])), 3)
            tasks.append(task)
        return tasks
    if section in ("reserved", "scheduled", "registered"):
        return list(reply or [])
    return reply


def inspect_workers(broker: CeleryBroker, sections: list[str], destination: list[str] | None) -> dict:
    answered, unknown, pings = broker.discover(destination)
    others = [s for s in sections if s != "ping"]
    workers = {}
    for node in unknown:
        workers[node] = {"status": "unknown", "ping": None, "idle": None, **{s: None for s in others}}
    for node in answered:
        workers[node] = {"status": "ok", "ping": pings[node], "unanswered": []}
    for section in others:
        replies = broker.ask(section, answered) if answered else {}
        now = time.time()
        for node in answered:
            if node in replies:
                workers[node][section] = _normalize(section, replies[node], now)
            else:
                workers[node][section] = None
                workers[node]["unanswered"].append(section)
    for node in answered:
        info = workers[node]
        if info.get("active") is None or info.get("reserved") is None:
            info["idle"] = None
        else:
            info["idle"] = not info["active"] and not info["reserved"]
    return {"workers": workers, "answered": answered, "unknown": unknown}


def overall_idle(workers: dict, answered: list[str], unknown: list[str]):
    states = [workers[node].get("idle") for node in answered]
    if any(state is False for state in states):
        return False
    if unknown or not answered or any(state is None for state in states):
        return None
    return True


# --------------------------------------------------------------------------- wait_for


def _waiting_for_workers(broker: CeleryBroker, destination, min_workers):
    answered, unknown, _replies = broker.discover(destination)
    need = min_workers if min_workers is not None else (0 if destination else 1)
    missing = []
    if unknown:
        missing.append("no reply from " + ", ".join(unknown))
    if len(answered) < need:
        missing.append(
            f"{need} worker(s) to answer (min_workers={need}); {len(answered)} did: {', '.join(answered) or 'none'}"
        )
    return "; ".join(missing)


def _waiting_for_idle(broker: CeleryBroker, destination, min_workers):
    if destination:
        answered, unknown, _replies = broker.discover(destination)
    else:
        answered, unknown, _replies = broker.discover(None)
    need = min_workers if min_workers is not None else 1
    tasks, no_answer = broker.busy(answered) if answered else ({}, [])
    missing = []
    if len(answered) < need:
        missing.append(f"{need} worker(s) to answer; {len(answered)} did: {', '.join(answered) or 'none'}")
    now = time.time()
    for node in sorted(tasks):
        if tasks[node]:
            missing.append(f"{node}: " + ", ".join(describe_task(t, now) for t in tasks[node]))
    for node in sorted(set(unknown) | set(no_answer)):
        missing.append(f"{node}: no reply (unknown, not idle)")
    return "; ".join(missing)


def wait_for(module: AnsibleModule, broker: CeleryBroker, kind: str, result: dict, started_module: float) -> float:
    params = module.params
    check = _waiting_for_workers if kind == "workers" else _waiting_for_idle
    started = time.monotonic()
    deadline = started + params["wait_timeout"]
    while True:
        waiting = check(broker, params["destination"], params["min_workers"])
        if not waiting:
            return round(time.monotonic() - started, 3)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            result["waited"] = round(time.monotonic() - started, 3)
            result["waiting_for"] = waiting
            result["elapsed"] = round(time.monotonic() - started_module, 3)
            module.fail_json(
                msg=f"wait_for={kind}: gave up after {params['wait_timeout']:g}s; still waiting for {waiting}",
                **result,
            )
        time.sleep(max(0.0, min(params["poll_interval"], remaining)))


# --------------------------------------------------------------------------- thresholds


def check_thresholds(params: dict, state: dict, queues: dict, timeout: float) -> tuple[list[str], list[str]]:
    checked, failed = [], []
    answered, unknown, workers = state["answered"], state["unknown"], state["workers"]
    min_workers = params["min_workers"]
    if min_workers is not None:
        checked.append("min_workers")
        if len(answered) < min_workers:
            of = f" of {len(params['destination'])}" if params["destination"] else ""
            message = (
                f"min_workers={min_workers}: {len(answered)}{of} worker(s) answered within {timeout:g}s "
                f"({', '.join(answered) or 'none'})"
            )
            if unknown:
                message += "; no reply from " + ", ".join(unknown)
            failed.append(message)
    if params["expect_queues"]:
        checked.append("expect_queues")
        unconsumed = [q for q in params["expect_queues"] if not (queues.get(q) or {}).get("consumers")]
        if unconsumed:
            failed.append(
                f"expect_queues: nobody consumes {', '.join(unconsumed)} "
                f"(workers that answered: {', '.join(answered) or 'none'})"
            )
    default_limit, limits = parse_depth_limits(params["max_queue_depth"])
    if params["max_queue_depth"] is not None:
        checked.append("max_queue_depth")
        failed += check_queue_depths(queues, default_limit, limits)
    limit = params["max_task_runtime"]
    if limit is not None:
        checked.append("max_task_runtime")
        stuck = []
        for node in answered:
            for task in workers[node].get("active") or []:
                if task.get("runtime") is not None and task["runtime"] > limit:
                    stuck.append(f"{node}: {describe_task(task)}")
        if stuck:
            failed.append(f"max_task_runtime={limit:g}s: {len(stuck)} task(s) running longer: " + "; ".join(stuck))
    return checked, failed


# --------------------------------------------------------------------------- main


def run(module: AnsibleModule, broker: CeleryBroker, result: dict, started: float) -> None:
    params = module.params
    if params["wait_for"]:
        result["waited"] = wait_for(module, broker, params["wait_for"], result, started)
    sections = _sections(params)
    state = inspect_workers(broker, sections, params["destination"])
    workers = state["workers"]
    result.update(
        workers=workers,
        worker_names=state["answered"],
        unknown_workers=state["unknown"],
        idle=overall_idle(workers, state["answered"], state["unknown"]),
    )

    _default, limits = parse_depth_limits(params["max_queue_depth"])
    names = set(params["queues"]) | set(params["expect_queues"]) | set(limits)
    collected_queues = "active_queues" in sections
    if collected_queues:
        for node in state["answered"]:
            names.update(workers[node].get("active_queues") or [])
    queues = broker.queue_depths(names)
    for name, info in queues.items():
        if collected_queues:
            info["consumers"] = sorted(n for n in state["answered"] if name in (workers[n].get("active_queues") or []))
        else:
            info["consumers"] = None
    result["queues"] = queues

    checked, failed = check_thresholds(params, state, queues, params["timeout"])
    result["thresholds"] = {"checked": checked, "failed": failed}
    if failed:
        result["elapsed"] = round(time.monotonic() - started, 3)
        module.fail_json(msg="; ".join(failed), **result)


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_CELERY:
        module.fail_json(msg=missing_required_lib("celery"), exception=CELERY_IMPORT_ERROR)
    params = module.params
    secrets = protect(module, params["broker_url"], params["broker_transport_options"])
    try:
        parse_depth_limits(params["max_queue_depth"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    result = {
        "changed": False,
        "workers": {},
        "worker_names": [],
        "unknown_workers": [],
        "idle": None,
        "queues": {},
        "thresholds": {"checked": [], "failed": []},
        "waited": 0.0,
        "broker": safe_url(params["broker_url"]),
        "transport": None,
        "elapsed": 0.0,
    }
    started = time.monotonic()
    broker = CeleryBroker.from_params(params)
    try:
        broker.connect()
        result["transport"] = broker.transport
        run(module, broker, result, started)
    except BrokerError as exc:
        result["elapsed"] = round(time.monotonic() - started, 3)
        module.fail_json(msg=str(exc), **result)
    except Exception as exc:
        result["elapsed"] = round(time.monotonic() - started, 3)
        module.fail_json(
            msg=redact(f"celery_inspect failed: {exc.__class__.__name__}: {exc}", secrets),
            exception=redact(traceback.format_exc(), secrets),
            **result,
        )
    finally:
        broker.close()
    result["elapsed"] = round(time.monotonic() - started, 3)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
