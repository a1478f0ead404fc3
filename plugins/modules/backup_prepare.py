#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_prepare
short_description: Make the backup directory, see whether a backup was taken already, take the backup lock
version_added: "0.1.0"
description:
  - The first step of the backup role, in one call on the database host.
  - Makes O(path) a directory owned by O(owner) and its primary group, with mode O(mode), creating or
    correcting it.
  - When O(done) exists in O(path) (the manifest of the backup this run would take, published
    by an earlier run) the backup is taken already; RV(done) is true and the lock is not taken,
    so a re-run changes nothing.
  - Otherwise takes the backup lock C(<path>/.lock) for O(lock.token), the same lock as
    M(opsbook.webstack.deploy_lock) (a directory holding C(holder.json)). A lock another run
    holds fails the task at once naming its holder; a lock without a heartbeat for O(lock.stale_after)
    seconds is taken over with a warning naming the old holder.
  - The lock is released by M(opsbook.webstack.backup_publish)
    (O(opsbook.webstack.backup_publish#module:release_lock)) once the backup is published and
    rotated, or by M(opsbook.webstack.backup_rotate) (O(opsbook.webstack.backup_rotate#module:release_lock)),
    or by M(opsbook.webstack.deploy_lock) C(state=absent) when the backup fails before.
author: opsbook engineers (@opsbook)
extends_documentation_fragment:
  - opsbook.webstack.backup_dir
options:
  owner:
    description: User that owns O(path), with its primary group (as O(opsbook.webstack.backup_publish#module:owner)).
    type: str
    required: true
  mode:
    description: Mode of O(path), octal digits.
    type: str
    default: "0700"
  done:
    description: File name in O(path) whose presence means this backup was published already.
    type: str
    required: true
  lock:
    description: The lock to take when the backup is not taken already.
    type: dict
    required: true
    suboptions:
      token:
        description: Identifies this run; only this token releases the lock.
        type: str
        required: true
      holder:
        description: What to record about the holder (user, controller, release, action).
        type: dict
        default: {}
      stale_after:
        description: A lock without a heartbeat for this many seconds (its holder died) is stale and taken over.
        type: int
        default: 21600
attributes:
  check_mode:
    support: full
    description: >-
      Reports whether the directory would be made or corrected and the lock taken; nothing is
      touched. A lock another run holds fails in check mode too, as the real run would.
"""

EXAMPLES = r"""
- name: Prepare backup 20261129T030000Z of journal
  opsbook.webstack.backup_prepare:
    path: /var/backups/opsbook/journal
    owner: postgres
    done: journal-20261129T030000Z.json
    lock:
      token: "{{ backup_lock_token }}"
      holder: {user: alice, controller: ci-3, release: 20261129T020000Z-v2, action: backup of journal}
  register: prepared
"""

RETURN = r"""
done:
  description: Whether O(done) exists (the backup was published already; no lock was taken).
  returned: always
  type: bool
directory:
  description: What was done to O(path) (V(created), V(corrected), V(ok)).
  returned: always
  type: str
lock:
  description: The lock, when the backup is not taken already.
  returned: always
  type: dict
  contains:
    taken:
      description: Whether this call took the lock (false in check mode, and when RV(done)).
      type: bool
    path:
      description: The lock's directory.
      type: str
    holder:
      description: The holder note (without the token).
      type: dict
    taken_over:
      description: The holder of a stale lock that was taken over.
      type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.prepare import (
    PREPARE_SPEC,
    PrepareError,
    check,
    done_or_lock,
    ensure_directory,
)


def main() -> None:
    module = AnsibleModule(argument_spec=PREPARE_SPEC, supports_check_mode=True)
    params = module.params
    try:
        uid, gid, mode = check(params)
        directory = ensure_directory(params["path"], uid, gid, mode, module.check_mode)
        result = done_or_lock(params, directory, module.check_mode, module.warn)
    except PrepareError as exc:
        module.fail_json(msg=exc.msg, **exc.extra)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
