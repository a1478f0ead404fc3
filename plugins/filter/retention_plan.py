# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The retention_plan filter: which backups a rotation keeps and deletes, and why."""

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.module_utils.retention import RetentionError, plan

DOCUMENTATION = r"""
name: retention_plan
short_description: Plan which backups a rotation keeps and deletes
version_added: 0.1.0
description:
  - A pure function of the backup list, the policy and the time; it deletes nothing.
  - Rules combine as a union; the newest verified backup is always kept; unverified backups
    never count and are always deleted; a policy with no rule keeps everything.
options:
  _input:
    description: Backups, each a dict with C(id), C(time) (ISO 8601) and C(verified) (bool).
    type: list
    elements: dict
    required: true
  policy:
    description:
      - C(keep_last), C(keep_days), C(keep_daily), C(keep_weekly), C(keep_monthly).
      - Whole numbers; 0 or unset turns a rule off.
    type: dict
    required: true
  now:
    description: The time to plan at (ISO 8601); defaults to now.
    type: str
"""

EXAMPLES = r"""
- name: Plan the rotation
  ansible.builtin.set_fact:
    backup_plan: "{{ backup_list | opsbook.webstack.retention_plan({'keep_last': 7, 'keep_monthly': 6}) }}"
"""

RETURN = r"""
_value:
  description: C(keep) and C(delete) (ids, newest first) and C(reasons) (id to list of reasons).
  type: dict
"""


def retention_plan(backups, policy, now=None):
    try:
        return plan(list(backups or []), dict(policy or {}), now)
    except RetentionError as exc:
        raise AnsibleFilterError(f"retention_plan: {exc}") from None


class FilterModule:
    def filters(self):
        return {"retention_plan": retention_plan}
