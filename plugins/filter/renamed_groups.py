# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The renamed_groups and renamed_group_additions filters: which canonical groups an inventory
renamed with opsbook_group_*, and the hosts each canonical name must be given for the plays."""

from __future__ import annotations

from collections.abc import Mapping

DOCUMENTATION = r"""
name: renamed_groups
short_description: The canonical groups an inventory renamed, canonical name to inventory group
version_added: 0.2.0
description:
  - A pure function, run by the validate role (C(vars/main.yml)) before any host is reached.
  - Pairs each canonical group name with the value of its C(opsbook_group_<name>) variable, in the
    same order, and keeps the names whose value is set and differs from the name.
  - The companion filter C(renamed_group_additions) (input the C(groups) magic variable, argument
    this filter's result) lists each host of a renamed group that its canonical group does not
    hold yet, as C({host, group}), which the validate role's C(groups) entry point adds (C(add_host)).
options:
  _input:
    description: The canonical group names the plays' C(hosts:) use.
    type: list
    elements: str
    required: true
  given:
    description: For each canonical name, in the same order, its C(opsbook_group_<name>); empty when unset.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Groups renamed with opsbook_group_*
  ansible.builtin.debug:
    msg: >-
      {{ names | opsbook.webstack.renamed_groups(
           lookup('ansible.builtin.vars', *(names | map('regex_replace', '^', 'opsbook_group_')),
                  default='', wantlist=true)) }}
  vars:
    names: [lb, app, worker, scheduler, db, broker, backup_store]
"""

RETURN = r"""
_value:
  description: >-
    Canonical name to inventory group, only for the renamed ones (C({app: web}) for C(opsbook_group_app=web)).
  type: dict
"""


def renamed_groups(canonical, given) -> dict:
    names, values = list(canonical or []), list(given or [])
    if len(names) != len(values):
        raise ValueError(f"renamed_groups: {len(names)} group names but {len(values)} values")
    return {name: value for name, value in zip(names, values, strict=True) if value and value != name}


def renamed_group_additions(groups, renamed) -> list[dict]:
    """Each host of a renamed group that its canonical group does not hold yet: {host, group}."""
    groups = dict(groups or {}) if isinstance(groups, Mapping) else {}
    additions = []
    for name, given in dict(renamed or {}).items():
        have = groups.get(name) or []
        additions += [{"host": host, "group": name} for host in groups.get(given) or [] if host not in have]
    return additions


class FilterModule:
    def filters(self):
        return {"renamed_groups": renamed_groups, "renamed_group_additions": renamed_group_additions}
