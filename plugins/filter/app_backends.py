# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app_backends filter: the load balancer's app servers, by blue-green slot."""

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.module_utils.slots import SlotError, backends

DOCUMENTATION = r"""
name: app_backends
short_description: The load balancer's app servers, and which take traffic
version_added: 0.2.0
description:
  - Without blue-green (C(app_slots) empty), every app host on C(app_http_port), all active.
  - With C(app_slots), every host of each slot on the slot's port, named C(<host>-<slot>);
    the servers of the active slot are active.
  - Fails naming C(app_slots) when the slots are malformed.
options:
  _input:
    description: The blue-green slots (C(app_slots)); empty for none.
    type: dict
    required: true
  groups:
    description: The inventory's groups.
    type: dict
    required: true
  app_group:
    description: The inventory's app group name.
    type: str
    required: true
  http_port:
    description: C(app_http_port), the port without blue-green.
    type: int
    required: true
  active:
    description: The slot taking traffic.
    type: str
    default: blue
"""

EXAMPLES = r"""
- name: Servers of the nginx upstream
  ansible.builtin.debug:
    msg: "{{ app_slots | opsbook.webstack.app_backends(groups, 'app', app_http_port, 'green') | selectattr('active') }}"
"""

RETURN = r"""
_value:
  description: Servers, each with C(name), C(host), C(port), C(slot) and C(active).
  type: list
  elements: dict
"""


def app_backends(app_slots, groups, app_group, http_port, active="blue"):
    try:
        return backends(app_slots or {}, dict(groups), app_group, int(http_port), active or "blue")
    except SlotError as exc:
        raise AnsibleFilterError(f"app_backends: {exc}") from None


class FilterModule:
    def filters(self):
        return {"app_backends": app_backends}
