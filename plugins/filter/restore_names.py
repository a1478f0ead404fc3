# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore_names filter: the databases a restore creates and keeps, within PostgreSQL's 63 bytes."""

from ansible_collections.opsbook.webstack.plugins.module_utils.restore_names import restore_names as _restore_names

DOCUMENTATION = r"""
name: restore_names
short_description: Name the restored and the kept database of a restore, within PostgreSQL's 63-byte names
version_added: 0.2.0
description:
  - A pure function. The restored database is C(<database>_restore_<id>), the live one is kept as
    C(<database>_pre_restore_<id>), C(<id>) the UTC time as 14 digits; the maintenance role finds
    pre-restore databases by exactly that shape.
  - PostgreSQL cuts longer names to 63 bytes without an error, so the database's name may have at
    most 63 - 13 - 14 = 36 bytes. A name that does not fit, or an id that is not 14 digits, gives
    empty names and a C(problem) naming the variable.
options:
  _input:
    description: The database to restore (C(restore_database)).
    type: str
    required: true
  restore_id:
    description: The restore's id, the UTC time as C(YYYYMMDDHHMMSS).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Name the databases
  ansible.builtin.set_fact:
    names: "{{ restore_database | opsbook.webstack.restore_names(restore_id) }}"
"""

RETURN = r"""
_value:
  description: >-
    C(new_database), C(old_database) (empty when they would not fit) and C(problem) (empty, or
    what is wrong).
  type: dict
"""


def restore_names(database, restore_id):
    return _restore_names(database, restore_id)


class FilterModule:
    def filters(self):
        return {"restore_names": restore_names}
