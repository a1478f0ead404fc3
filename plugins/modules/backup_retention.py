#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_retention
short_description: Apply a retention policy to an app's published backups in a directory
version_added: "0.1.0"
description:
  - Reads the manifest of every published backup of O(app) in O(path) (files named
    C(<app>-<id>.json) whose C(app) and C(id) fields agree with the name), plans with the
    same pure function as the P(opsbook.webstack.retention_plan#filter) filter, and deletes
    what the plan lets go in one call.
  - For each backup deleted, its manifest goes first (a manifest marks a complete backup, so
    an interrupted run never leaves a manifest pointing at missing data), then its dump
    (a file, or a directory-format dump's directory) and the media and configuration archives
    the manifest lists.
  - Only names inside O(path) are deleted; a manifest naming a file elsewhere fails the module
    before anything is deleted, as does a manifest that cannot be read or a bad policy.
  - The newest verified backup is never deleted; unverified backups never count toward a rule.
    A policy with no rule keeps everything.
  - Named C(backup_rotate) before version 0.2.0 (one word, retention, for the policy, its plan and
    applying it; docs/backup.md). C(opsbook.webstack.backup_rotate) still works, as a deprecated
    redirect to this module (C(meta/runtime.yml)).
author: opsbook engineers (@opsbook)
extends_documentation_fragment:
  - opsbook.webstack.backup_dir
options:
  app:
    description: The app whose backups the policy applies to; the manifests are C(<app>-<id>.json).
    type: str
    required: true
  policy:
    description:
      - Retention rules, combined as a union, as the C(backup_retention) variable of the
        backup role takes them.
      - C(keep_last), C(keep_days), C(keep_daily), C(keep_weekly), C(keep_monthly).
    type: dict
    default: {}
  policy_name:
    description: The variable that sets O(policy), named in error messages.
    type: str
    default: backup_retention
  now:
    description: The time the plan is made at (ISO 8601); the current time when not set.
    type: str
  pending:
    description:
      - A backup this run would publish but has not (check mode), with its C(id) and C(time)
        (ISO 8601). It is planned as the newest verified backup, so the plan lists what a real
        run would delete; it is never deleted itself and is not in RV(kept).
    type: dict
  release_lock:
    description:
      - The token of the backup lock (C(<path>/.lock)) this run took with
        O(opsbook.webstack.pg_backup_dump#module:prepare). Rotation runs under the lock, so another backup of
        the database never publishes or applies retention at the same time; the lock is released
        after retention, also when it fails. A lock another token holds is left alone.
      - Nothing is released in check mode.
    type: str
  list_only:
    description:
      - Only read the manifests and return them all in RV(kept); plan nothing, delete
        nothing (the off-host copy step uses it when retention did not run before it).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Plans and reports what would be deleted; nothing is deleted.
seealso:
  - plugin: opsbook.webstack.retention_plan
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Keep the last 7 backups and one a month for 6 months
  opsbook.webstack.backup_retention:
    path: /var/backups/opsbook/journal
    app: journal
    policy:
      keep_last: 7
      keep_monthly: 6
  register: retention
"""

RETURN = r"""
plan:
  description: The plan, newest first, with the reasons each backup is kept or deleted.
  returned: always (empty with O(list_only))
  type: dict
  sample:
    keep: ["20261122T030000Z"]
    delete: ["20261121T030000Z"]
    reasons:
      20261122T030000Z: ["one of the last 1", "the newest verified backup is never deleted"]
      20261121T030000Z: ["no rule keeps it"]
deleted:
  description: Paths deleted (in check mode, the paths that would be), manifests first.
  returned: always
  type: list
  elements: str
kept:
  description:
    - The manifests of the backups kept (in check mode, that a real run would keep), newest
      first, as read from O(path). The off-host copies use it instead of reading them again.
  returned: always
  type: list
  elements: dict
lock_released:
  description: Whether O(release_lock) released the lock.
  returned: always
  type: bool
summary:
  description: One line for people, naming each backup kept and deleted and why.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.retention_apply import (
    RetentionApplyError,
    RetentionError,
    apply_retention,
    release_backup_lock,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            app=dict(type="str", required=True),
            policy=dict(type="dict", default={}),
            policy_name=dict(type="str", default="backup_retention"),
            now=dict(type="str"),
            pending=dict(type="dict"),
            list_only=dict(type="bool", default=False),
            release_lock=dict(type="str", no_log=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    failure = None
    try:
        outcome = apply_retention(
            p["path"], p["app"], p["policy"], now=p["now"], pending=p["pending"], list_only=p["list_only"],
            check_mode=module.check_mode,
        )  # fmt: skip
    except RetentionError as exc:
        failure = dict(msg=f"{p['policy_name']}: {exc}; nothing was deleted")
    except RetentionApplyError as exc:
        failure = dict(msg=str(exc), **({"plan": exc.plan} if exc.plan is not None else {}))
    # The backup lock is released whether retention worked or not: it only kept another backup of
    # the database from publishing or applying retention while this one did.
    released, lock_failure = release_backup_lock(p["path"], p["release_lock"], module.check_mode)
    if lock_failure:
        failure = dict(failure or {}, msg=f"{failure['msg']}; {lock_failure}" if failure else lock_failure)
    if failure:
        module.fail_json(lock_released=released, **failure)
    module.exit_json(lock_released=released, **outcome)


if __name__ == "__main__":
    main()
