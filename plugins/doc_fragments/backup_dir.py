# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup directory option of backup_publish and backup_retention."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  path:
    description: Directory of the published backups (the backup role's C(backup_dir)).
    type: path
    required: true
"""
