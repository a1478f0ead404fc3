# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The systemctl_show filter: the output of `systemctl show --property=... -- UNIT...` per unit."""

from __future__ import annotations

DOCUMENTATION = r"""
name: systemctl_show
short_description: The properties C(systemctl show) printed, one mapping per unit given
version_added: 0.2.0
description:
  - A pure function. C(systemctl show --property=A,B -- u1 u2) prints one block of C(NAME=value) lines
    per unit, in the order the units were given, blocks separated by an empty line, also for a unit that
    does not exist (C(ActiveState=inactive), C(UnitFileState=) empty).
  - Roles read the state of every unit of a host in one module run and keep only the units that are not as
    wanted (provision, blue_green, maintenance).
options:
  _input:
    description: The command's standard output (C(stdout) of its registered result); empty gives no unit.
    type: str
    required: true
  units:
    description: The units in the order they were given to C(systemctl show).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Read the state of the app's units
  ansible.builtin.command:
    argv: "{{ ['systemctl', 'show', '--property=ActiveState,UnitFileState', '--'] + units }}"
  register: unit_states
  changed_when: false
  check_mode: false

- name: Start the units that are not running
  ansible.builtin.systemd_service:
    name: "{{ item }}"
    state: started
  loop: "{{ units | reject('in', __running) | list }}"
  vars:
    __state: "{{ unit_states.stdout | opsbook.webstack.systemctl_show(units) }}"
    __running: >-
      {{ __state | dict2items | selectattr('value.ActiveState', 'equalto', 'active') | map(attribute='key') | list }}
"""

RETURN = r"""
_value:
  description: >-
    C({unit: {property: value}}) for every unit given, keyed by the name it was given under (an alias keeps
    its own name, not the unit systemd resolves it to); a unit whose block is missing maps to C({}).
  type: dict
"""


def systemctl_show(output: str | None, units: list[str]) -> dict[str, dict[str, str]]:
    blocks = (output or "").strip().split("\n\n") if (output or "").strip() else []
    states: dict[str, dict[str, str]] = {}
    for index, unit in enumerate(units):
        lines = blocks[index].splitlines() if index < len(blocks) else []
        states[unit] = dict(line.split("=", 1) for line in lines if "=" in line)
    return states


class FilterModule:
    def filters(self):
        return {"systemctl_show": systemctl_show}
