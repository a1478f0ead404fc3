#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rq_inspect
short_description: View RQ workers, queues and job registries, without changing anything
version_added: "0.1.0"
description:
  - Reads RQ's state from Redis with no project code, that is workers (state, queues, last heartbeat,
    current job), queue depths, and the started, failed, scheduled, deferred, finished and canceled registries.
  - Reading has no side effect. RQ's own C(count), C(len()), C(get_job_ids()) and C(Worker.all()) clean
    registries up (they move expired started jobs to the failed registry, delete expired entries, and drop
    dead workers from the worker set); this module reads the same keys without that.
  - This module only reads. Requeue, purge of failed jobs, drain and resume are in M(opsbook.webstack.rq_control).
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
  queues:
    description:
      - Queues to report.
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
    details: The module never changes anything, in check mode or not.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - Python 3.9 or later with rq (2.x) and redis-py on the host the module runs on, in releases that support that Python
    (rq 2.12 and redis-py 8, which the lab uses, need Python 3.10)
notes:
  - Failed job details (C(exc)) come from RQ's result stream, or the job's C(exc_info) for older jobs;
    job arguments are not decoded (they are pickled, and unpickling would need the project's code).
seealso:
  - module: opsbook.webstack.rq_control
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

- name: RQ | Fail unless the default queue is consumed and under 100 jobs
  opsbook.webstack.rq_inspect:
    redis_url: "{{ app_redis_url }}"
    queues: [default]
    min_workers: 1
    max_queue_depth: {default: 100}
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
  description: RQ workers are suspended (C(rq suspend), or M(opsbook.webstack.rq_control)'s C(drain)).
  returned: always
  type: bool
  sample: false
thresholds:
  description: Thresholds checked and failure messages.
  returned: always
  type: dict
  sample: {checked: [min_workers], failed: []}
elapsed:
  description: Seconds the whole module took.
  returned: always
  type: float
  sample: 0.012
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.opsbook.webstack.plugins.module_utils.celery_rq import (
    HAS_RQ,
    RQ_IMPORT_ERROR,
    common_argument_spec,
    run,
)


def argument_spec() -> dict:
    spec = common_argument_spec()
    spec.update(min_workers=dict(type="int"), max_queue_depth=dict(type="raw"))
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not HAS_RQ:
        module.fail_json(msg=missing_required_lib("rq"), exception=RQ_IMPORT_ERROR)
    run(module)


if __name__ == "__main__":
    main()
