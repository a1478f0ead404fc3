# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The broker_spec filter: app_broker with its defaults filled in (provision, maintenance read the kind)."""

from __future__ import annotations

from ansible_collections.opsbook.webstack.plugins.filter.broker_url import broker_spec

DOCUMENTATION = r"""
name: broker_spec
short_description: The app's Celery broker description (app_broker) with every default filled in
version_added: 0.3.0
description:
  - The dictionary opsbook.webstack.broker_url builds its URL from, for the tasks that need its parts.
    Provision creates the RabbitMQ vhost and user from it.
  - Keys C(kind), C(host), C(port), C(user), C(password), C(tls), and C(vhost) (RabbitMQ) or
    C(db) (Redis). See opsbook.webstack.broker_url for the defaults and the refusals.
extends_documentation_fragment:
  - opsbook.webstack.broker
options:
  _input:
    description: C(app_broker) (empty or none for the Redis of C(app_redis_*)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: RabbitMQ when the app's broker is one
  ansible.builtin.include_tasks: rabbitmq.yml
  when: (app_broker | default({}) | opsbook.webstack.broker_spec(app_redis_password, app_redis_host)).kind == 'rabbitmq'
"""

RETURN = r"""
_value:
  description: The description with defaults.
  type: dict
  sample: {kind: rabbitmq, host: rabbit1, port: 5672, vhost: /, user: journal, password: "...", tls: false}
"""


class FilterModule:
    def filters(self):
        return {"broker_spec": broker_spec}
