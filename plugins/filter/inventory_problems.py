# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory_problems filter: what is wrong with the inventory's groups, every problem at once."""

from __future__ import annotations

from collections.abc import Mapping

DOCUMENTATION = r"""
name: inventory_problems
short_description: Every problem of the inventory's groups, each naming the group and what is expected
version_added: 0.2.0
description:
  - A pure function, run by the validate role's C(groups) entry point before any host is reached.
  - A canonical group that already holds hosts other than those of the group it is renamed to
    (C(opsbook_group_<name>)) would bring those hosts into the plays.
  - A required group that is missing or holds no host.
  - A group that must hold exactly one host (the scheduler, the database primary) and does not.
options:
  _input:
    description: The inventory's groups (the C(groups) magic variable), group name to host list.
    type: dict
    required: true
  required:
    description: Groups that must exist and hold at least one host (C(validate_required_groups)).
    type: list
    elements: str
    required: true
  single_host:
    description: Groups that must hold exactly one host (C(validate_single_host_groups)).
    type: list
    elements: str
    required: true
  renamed:
    description: Canonical group name to the inventory group it is renamed to (only renamed ones).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Required groups are present, single-host groups hold one host
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems | join(' ') }}"
  vars:
    __problems: >-
      {{ groups | opsbook.webstack.inventory_problems(validate_required_groups, validate_single_host_groups) }}
"""

RETURN = r"""
_value:
  description: One message per problem, in the order above; empty when the groups are right.
  type: list
  elements: str
"""


def inventory_problems(groups, required, single_host, renamed=None) -> list[str]:
    groups = dict(groups or {}) if isinstance(groups, Mapping) else {}
    problems = []
    for name, given in dict(renamed or {}).items():
        strangers = [host for host in groups.get(name) or [] if host not in (groups.get(given) or [])]
        if strangers:
            problems.append(
                f"Group '{name}' holds {', '.join(strangers)}, not in '{given}' (opsbook_group_{name}): the plays"
                f" run on '{name}', which validation makes the hosts of '{given}'. Rename that group, or move those"
                f" hosts to '{given}'."
            )
    missing = [name for name in required or [] if not groups.get(name)]
    if missing:
        problems.append(
            f"Inventory is missing required group(s) {', '.join(missing)} (or they hold no host)."
            f" Required: {', '.join(required)}. Rename groups with the opsbook_group_* variables."
        )
    for name in single_host or []:
        if name in missing:
            continue
        members = list(groups.get(name) or [])
        if len(members) != 1:
            problems.append(
                f"Group '{name}' must hold exactly one host, it holds {len(members)}: {', '.join(members) or 'none'}."
            )
    return problems


class FilterModule:
    def filters(self):
        return {"inventory_problems": inventory_problems}
