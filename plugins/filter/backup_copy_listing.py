# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup_copy_listing filter: what a copy destination holds, from the role's hash script."""

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.module_utils.backup_copy import CopyPlanError, listing

DOCUMENTATION = r"""
name: backup_copy_listing
short_description: Read the "name sha256 size" lines of the backup role's hash script into a dict
version_added: 0.1.0
description:
  - A pure function. Each line is C(<name> <sha256> <size>), or C(<name> missing 0) for a name
    that is absent (left out of the result).
options:
  _input:
    description: The script's output.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Read what the store holds
  ansible.builtin.set_fact:
    held: "{{ register_hashes.stdout | opsbook.webstack.backup_copy_listing }}"
"""

RETURN = r"""
_value:
  description: Name to C(sha256) and C(size).
  type: dict
"""


def backup_copy_listing(text):
    try:
        return listing(text)
    except CopyPlanError as exc:
        raise AnsibleFilterError(f"backup_copy_listing: {exc}") from None


class FilterModule:
    def filters(self):
        return {"backup_copy_listing": backup_copy_listing}
