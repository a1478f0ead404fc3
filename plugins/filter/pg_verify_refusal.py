# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pg_verify_refusal filter: why a pg_dump_verify result does not let a backup through ('' when it does)."""

DOCUMENTATION = r"""
name: pg_verify_refusal
short_description: Why a pg_dump_verify result refuses a backup, or an empty string when it passes
version_added: 0.2.0
description:
  - A pure function, for a P(opsbook.webstack.pg_dump_verify#module) task registered with
    C(failed_when) false (which clears C(failed)). A backup passes only when the level asked for
    is in C(levels_passed) and the result carries no C(reason).
  - Anything else is refused, a failure without a C(reason) too (the module killed or crashed,
    its arguments refused), which a check on C(reason) alone would let through.
  - The restore role uses it for a real restore's verification and for the drill.
options:
  _input:
    description: The registered result of pg_dump_verify.
    type: dict
    required: true
  level:
    description: The level the backup must have passed.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse a backup that fails verification
  ansible.builtin.assert:
    that: result | opsbook.webstack.pg_verify_refusal('content') == ''
"""

RETURN = r"""
_value:
  description: >-
    '' when the backup passed; else C(<reason> at level <failed_level>), or C(no verdict at level
    <level>) when the result says nothing about why.
  type: str
"""


def pg_verify_refusal(result, level):
    result = dict(result or {})
    passed = result.get("levels_passed") or []
    if result.get("reason"):
        return f"{result['reason']} at level {result.get('failed_level') or level}"
    if level in passed and not result.get("failed"):
        return ""
    return f"no verdict at level {level}"


class FilterModule:
    def filters(self):
        return {"pg_verify_refusal": pg_verify_refusal}
