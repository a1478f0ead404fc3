# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The retention_problems filter: what is wrong with a retention policy, named by its variable."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ansible_collections.opsbook.webstack.plugins.module_utils.retention import RULES

DOCUMENTATION = r"""
name: retention_problems
short_description: What is wrong with a retention policy, each problem naming the variable and the accepted values
version_added: 0.2.0
description:
  - A pure function, run by the backup role before anything changes, so a bad policy never costs a dump.
  - A policy is a mapping of C(keep_last), C(keep_days), C(keep_daily), C(keep_weekly) and
    C(keep_monthly) to whole numbers, 0 or more; an unset, null or empty rule is 0 (off). This is
    how P(opsbook.webstack.retention_plan#filter) and M(opsbook.webstack.backup_retention) read it;
    a value they would take but that is not written as a whole number (C(5.0), C(true), C(" 5")) is
    refused here too.
options:
  _input:
    description: The retention policy.
    type: raw
    required: true
  name:
    description: The variable that sets the policy, named in the message.
    type: str
    default: backup_retention
"""

EXAMPLES = r"""
- name: Refuse a bad policy before anything changes
  ansible.builtin.assert:
    that: backup_retention | opsbook.webstack.retention_problems | length == 0
    fail_msg: "{{ backup_retention | opsbook.webstack.retention_problems | join('; ') }}"
"""

RETURN = r"""
_value:
  description: One message naming the variable, its value and what each bad rule holds; empty when the policy is right.
  type: list
  elements: str
"""

_WHOLE = re.compile(r"^[0-9]+$")


def _kind(value) -> str:
    """What the value is, in the user's words (Ansible's own types are subclasses: _AnsibleTaggedStr)."""
    for kind, name in (
        (bool, "a boolean"),
        (str, "text"),
        (int, "a number"),
        (float, "a number"),
        (Mapping, "a mapping"),
    ):
        if isinstance(value, kind):
            return name
    return "none" if value is None else "a list" if isinstance(value, (list, tuple)) else type(value).__name__


def retention_problems(policy, name="backup_retention") -> list[str]:
    expected = f"must map {', '.join(RULES[:-1])} or {RULES[-1]} to whole numbers, 0 or more"
    if not isinstance(policy, Mapping):
        return [f"{name} ({policy}) {expected} (a mapping is expected, got {_kind(policy)})"]
    bad = [f"{key} is not a rule" for key in policy if key not in RULES]
    bad += [
        f"{key} is {value!r}"
        for key, value in policy.items()
        if key in RULES and value is not None and str(value) != "" and not _WHOLE.match(str(value))
    ]
    return [f"{name} ({dict(policy)}) {expected}: {'; '.join(bad)}"] if bad else []


class FilterModule:
    def filters(self):
        return {"retention_problems": retention_problems}
