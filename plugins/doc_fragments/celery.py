# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by opsbook.webstack.celery_inspect and opsbook.webstack.celery_control."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  broker_url:
    description:
      - Broker URL as the workers have it, for example C(redis://:PASSWORD@redis1:6379/0) or
        C(amqp://USER:PASSWORD@rabbit1:5672/VHOST). Failover lists (C(;)-separated) work as in Celery.
      - The module builds a bare Celery app on this URL; no project code is imported.
      - Never shown in output or error messages; its password is masked wherever it would appear.
    type: str
    required: true
  timeout:
    description:
      - Seconds to wait for worker replies to one broadcast.
      - Without O(destination), every broadcast waits this long (nobody knows how many workers
        will answer). With O(destination), the call returns as soon as those workers answered.
    type: float
    default: 1.0
  connect_timeout:
    description:
      - Seconds to wait for the broker connection before failing.
    type: float
    default: 5.0
  destination:
    description:
      - Worker node names (C(celery@host1)) to ask. A named worker that does not answer within
        O(timeout) is reported as unknown, never as idle or healthy.
      - Omit to broadcast to every worker on the broker.
    type: list
    elements: str
  broker_transport_options:
    description:
      - Passed to the bare Celery app as C(broker_transport_options), exactly as the workers have
        it, for example a Redis key prefix (C(global_keyprefix)), a priority separator (C(sep)) and
        priority steps (C(priority_steps), such as V([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])).
      - A key prefix or priority steps that differ from the workers' make queues look empty and
        broadcasts go unanswered.
      - Values of keys that look like passwords (for example in C(sentinel_kwargs)) are masked in the output.
    type: dict
    default: {}
  accept_content:
    description:
      - Content types accepted in worker replies (Celery's C(accept_content)), as the app has it
        (C(app_celery_accept_content)), for example V([json]), V([pickle]) or V([msgpack, json]).
      - Workers answer control messages in their own C(task_serializer), so that one must be listed.
    type: list
    elements: str
    default: [json]
  serializer:
    description:
      - Serializer of the control messages and of the tasks the module sends (Celery's C(task_serializer)).
      - A worker refuses a message whose content type its C(accept_content) lacks and leaves it unanswered.
      - Default is the first item of O(accept_content) (C(application/x-python-serialize) counts as C(pickle)).
    type: str
    version_added: 0.3.0
requirements:
  - Python 3.9 or later, with celery (5.x) and its kombu, on the host the module runs on (the Python
    that runs the workers has them), in releases that support that Python (celery and kombu 5.7, which
    the lab uses, need Python 3.10)
notes:
  - The module runs where the broker is reachable, usually a worker host with C(ansible_python_interpreter)
    set to the virtualenv that has Celery.
"""
