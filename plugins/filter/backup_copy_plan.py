# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup_copy_plan filter: which backups a copy destination lacks."""

from ansible.errors import AnsibleFilterError
from ansible_collections.opsbook.webstack.plugins.module_utils.backup_copy import CopyPlanError, plan

DOCUMENTATION = r"""
name: backup_copy_plan
short_description: Decide which backups (data and manifest) a copy destination lacks
version_added: 0.1.0
description:
  - A pure function. For each verified local backup (its manifest), compares what the
    destination holds with what the manifest promises. The data must have the manifest's
    sha256 and size, and the destination's manifest the local manifest's sha256.
  - A backup's files are its dump (C(file)) and the archives its manifest lists under C(files)
    (media, configuration), each with C(file), C(sha256) and C(size).
  - Returns one entry per backup with C(copy_parts) (the files to (re)copy), C(copy_data) (any)
    and C(copy_manifest); an entry with a file present but wrong gets a C(problem).
options:
  _input:
    description: The local backups' manifests (C(id), C(file), C(sha256), C(size)).
    type: list
    elements: dict
    required: true
  held:
    description: What the destination holds, name to C(sha256) and C(size) (missing names are absent).
    type: dict
    required: true
  manifests:
    description: The local manifests' own sha256, name to C(sha256); a manifest not in it is always copied.
    type: dict
    required: true
  app_name:
    description: Application name; a backup's manifest is C(<app_name>-<id>.json).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Plan the copies
  ansible.builtin.set_fact:
    plan: "{{ manifests | opsbook.webstack.backup_copy_plan(held, local_manifests, app_name) }}"
"""

RETURN = r"""
_value:
  description: >-
    One dict per backup: C(id), C(file), C(manifest), C(sha256), C(size), C(parts) (every file
    with C(file), C(sha256), C(size), C(manifest)), C(copy_parts), C(copy_data),
    C(copy_manifest), C(problem) (empty, or what was wrong with the copies found there).
  type: list
  elements: dict
"""


def backup_copy_plan(backups, held, manifests, app_name):
    try:
        return plan(list(backups or []), dict(held or {}), dict(manifests or {}), str(app_name))
    except CopyPlanError as exc:
        raise AnsibleFilterError(f"backup_copy_plan: {exc}") from None


class FilterModule:
    def filters(self):
        return {"backup_copy_plan": backup_copy_plan}
