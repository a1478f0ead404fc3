# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory_groups filter: each canonical group name the roles use, mapped to the inventory's
group (its opsbook_group_<name>, or the name itself)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: inventory_groups
short_description: The inventory's name of each group the roles use, canonical name to inventory group
version_added: 0.2.0
description:
  - The one place the roles map the C(opsbook_group_<name>) variables (docs/inventory.md). For each
    canonical group (C(lb), C(app), C(worker), C(scheduler), C(db), C(broker), C(backup_store)), the
    value of C(opsbook_group_<name>) when it is defined, else the canonical name itself, as
    C(opsbook_group_<name> | default('<name>')) would.
  - Give it the variables in scope (C(vars)), so that a group renamed in a play's C(vars) or with
    C(-e) counts as one renamed in the inventory.
  - Its result is the C(group_names) argument of the C(app_units) and C(backup_config_paths) filters.
options:
  _input:
    description: The variables in scope, C(vars) (or a host's, C(hostvars[host])).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: This host's units, in an inventory that may rename the app, worker and scheduler groups
  ansible.builtin.debug:
    msg: >-
      {{ inventory_hostname | opsbook.webstack.app_units(app_name, app_workers, groups, {},
           vars | opsbook.webstack.inventory_groups) }}
"""

RETURN = r"""
_value:
  description: >-
    Canonical name to inventory group, for every canonical group (C({lb: lb, app: web, ...}) for
    C(opsbook_group_app=web)).
  type: dict
"""

# The group names the plays' `hosts:` use (the validate role checks the same list).
CANONICAL_GROUPS = ("lb", "app", "worker", "scheduler", "db", "broker", "backup_store")


def inventory_groups(variables) -> dict:
    if not isinstance(variables, Mapping):
        got = type(variables).__name__
        raise AnsibleFilterError(f"inventory_groups: expects the variables in scope (vars), got {got}")
    # Like default(): only an undefined variable falls back to the name (an empty one does not).
    return {name: variables.get(f"opsbook_group_{name}", name) for name in CANONICAL_GROUPS}


class FilterModule:
    def filters(self):
        return {"inventory_groups": inventory_groups}
