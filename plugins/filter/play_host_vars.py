# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The play_host_vars filter: every play host's variables checked in one task."""

from __future__ import annotations

from jinja2 import Undefined
from jinja2.exceptions import UndefinedError

DOCUMENTATION = r"""
name: play_host_vars
short_description: Some variables as each play host sees them, read from one host's task
version_added: 0.2.0
description:
  - Lets one C(run_once) task check the variables of every host of the play, instead of one task per host
    (each task on each host costs Ansible a worker process; the validation play runs first in every playbook).
  - The host running the task reads its own variables (C(vars)), play and role variables included.
  - Another host's variable comes from C(hostvars) when the inventory or C(-e) sets it for that host. A
    variable that the inventory sets for the running host but not for that host is unset there. Any other
    variable (set by the play, a role's defaults or C(vars:) of an import) is the same on every host, so the
    running host's value is used; C(hostvars) does not hold play variables.
  - A variable whose value refers to an undefined one (C(app_db_password) set to C({{ vault_x }}) without the
    vault) is unset, as C(is defined) says.
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: The hosts to read, usually C(ansible_play_hosts).
    type: list
    elements: str
    required: true
  names:
    description: The variable names to read.
    type: list
    elements: str
    required: true
  own_vars:
    description: The running host's C(vars).
    type: dict
    required: true
  own_host:
    description: The running host's name, C(inventory_hostname).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Required variables are set on every host
  ansible.builtin.assert:
    that: __unset | length == 0
    fail_msg: "Missing variable(s) {{ __unset | join(', ') }}."
  run_once: true
  vars:
    __views: >-
      {{ hostvars | opsbook.webstack.play_host_vars(ansible_play_hosts, ['app_name', 'app_user'], vars,
                                                    inventory_hostname) }}
    __unset: "{{ dict(__views.keys() | zip(__views.values() | map(attribute='unset'))) | opsbook.webstack.by_host }}"
"""

RETURN = r"""
_value:
  description: >-
    C({host: {values: {name: value}, unset: [name]}}) for every host given, in that order; C(values) holds the
    names that are set, templated, C(unset) the others in the order given.
  type: dict
"""


def _read(source, name):
    """(True, value) when name is set in source and its value can be templated; (False, None) otherwise."""
    try:
        value = source[name]
    except (KeyError, UndefinedError):
        return False, None
    # hostvars gives an undefined value back as a marker instead of raising.
    return (False, None) if isinstance(value, Undefined) else (True, value)


def play_host_vars(hostvars, hosts, names, own_vars, own_host) -> dict[str, dict]:
    own_inventory = hostvars[own_host]
    views: dict[str, dict] = {}
    for host in hosts:
        values: dict = {}
        unset: list[str] = []
        theirs = hostvars[host]
        for name in names:
            if host == own_host:
                found, value = _read(own_vars, name)
            elif name in theirs:
                found, value = _read(theirs, name)
            elif name in own_inventory:
                found, value = False, None
            else:
                found, value = _read(own_vars, name)
            if found:
                values[name] = value
            else:
                unset.append(name)
        views[host] = {"values": values, "unset": unset}
    return views


class FilterModule:
    def filters(self):
        return {"play_host_vars": play_host_vars}
