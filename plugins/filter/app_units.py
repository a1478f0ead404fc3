# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app_units filter: the app's systemd units on one host, with or without blue-green slots."""

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.module_utils.slots import SlotError, host_units

DOCUMENTATION = r"""
name: app_units
short_description: The application's systemd units on a host
version_added: 0.2.0
description:
  - Without blue-green (C(app_slots) empty) an app host gets C(<app>.socket) and
    C(<app>.service) running from C(current), a worker host one C(<app>-<worker>.service) per
    Celery worker and C(count) units per RQ worker (C(<app>-<name>.service), C(<app>-<name>-<n>.service)
    when C(count) is above 1), the scheduler host the beat unit or the RQ scheduler's.
  - With C(app_slots), every unit is per slot (C(<app>-blue.service), C(<app>-green-worker.service))
    and runs from the slot's pointer (C(app_root/blue)); a slot's web units go on the hosts of its
    group, its workers on those that are also worker hosts, its beat on the first host of its group
    in the scheduler group (else the group's first host).
  - Fails naming C(app_slots) when the slots are malformed.
options:
  _input:
    description: The host (inventory_hostname).
    type: str
    required: true
  app_name:
    description: The app's name (unit name prefix).
    type: str
    required: true
  app_workers:
    description: The app_workers list.
    type: list
    elements: dict
    required: true
  groups:
    description: The inventory's groups (the C(groups) magic variable).
    type: dict
    required: true
  app_slots:
    description: The blue-green slots (C(blue) and C(green), each with C(group) and C(port)); empty for none.
    type: dict
  group_names:
    description: The inventory's names of the C(app), C(worker) and C(scheduler) groups, when not those.
    type: dict
"""

EXAMPLES = r"""
- name: Units of this host
  ansible.builtin.set_fact:
    units: "{{ inventory_hostname | opsbook.webstack.app_units(app_name, app_workers, groups, app_slots) }}"
"""

RETURN = r"""
_value:
  description: >-
    Units, each with C(unit), C(kind) (socket, web, worker, beat, rq, rq-scheduler), C(slot), C(pointer)
    and C(worker); RQ units also C(rq_base) (the worker's name before C(@<host>)) and C(queues).
  type: list
  elements: dict
"""


def app_units(host, app_name, app_workers, groups, app_slots=None, group_names=None):
    try:
        return host_units(host, app_name, list(app_workers or []), dict(groups), app_slots or {}, group_names)
    except SlotError as exc:
        raise AnsibleFilterError(f"app_units: {exc}") from None


class FilterModule:
    def filters(self):
        return {"app_units": app_units}
