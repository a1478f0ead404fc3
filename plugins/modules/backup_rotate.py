#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_rotate
short_description: Rotate an app's published backups in a directory by a retention policy
version_added: "0.1.0"
description:
  - Reads the manifest of every published backup of O(app) in O(path) (files named
    C(<app>-<id>.json) whose C(app) and C(id) fields agree with the name), plans with the
    same pure function as the P(opsbook.webstack.retention_plan#filter) filter, and deletes
    what the plan lets go in one call.
  - For each backup deleted, its manifest goes first (a manifest marks a complete backup, so
    an interrupted rotation never leaves a manifest pointing at missing data), then its dump
    (a file, or a directory-format dump's directory) and the media and configuration archives
    the manifest lists.
  - Only names inside O(path) are deleted; a manifest naming a file elsewhere fails the module
    before anything is deleted, as does a manifest that cannot be read or a bad policy.
  - The newest verified backup is never deleted; unverified backups never count toward a rule.
    A policy with no rule keeps everything.
author: opsbook engineers
extends_documentation_fragment:
  - opsbook.webstack.backup_dir
options:
  app:
    description: The app whose backups are rotated; the manifests are C(<app>-<id>.json).
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
        M(opsbook.webstack.backup_prepare). Rotation runs under the lock, so another backup of
        the database never publishes or rotates at the same time; the lock is released after
        rotation, also when rotation fails. A lock another token holds is left alone.
      - Nothing is released in check mode.
    type: str
  list_only:
    description:
      - Only read the manifests and return them all in RV(kept); plan nothing, delete
        nothing (the off-host copy step uses it when no rotation ran before it).
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
  opsbook.webstack.backup_rotate:
    path: /var/backups/opsbook/journal
    app: journal
    policy:
      keep_last: 7
      keep_monthly: 6
  register: rotation
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

import json
import os
import re
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.lock import release
from ansible_collections.opsbook.webstack.plugins.module_utils.retention import RetentionError, plan


class RotationError(Exception):
    def __init__(self, msg: str, plan: dict | None = None):
        super().__init__(msg)
        self.plan = plan


def read_backups(path: str, app: str) -> dict[str, dict]:
    """{id: manifest} for every published backup of app in path."""
    name = re.compile(re.escape(app) + r"-(?P<id>[0-9A-Za-z._-]+)\.json$")
    backups: dict[str, dict] = {}
    try:
        names = sorted(os.listdir(path))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RotationError(f"cannot list {path}: {exc.strerror}") from None
    for entry in names:
        match = name.match(entry)
        full = os.path.join(path, entry)
        if not match or os.path.islink(full) or not os.path.isfile(full):
            continue
        try:
            with open(full, encoding="utf-8") as handle:
                manifest = json.load(handle)
        except (OSError, ValueError) as exc:
            raise RotationError(f"cannot read the manifest {full}: {exc}; nothing was deleted") from None
        if not isinstance(manifest, dict) or manifest.get("app", app) != app or manifest.get("id") != match["id"]:
            continue  # another app's backup whose name shares the prefix (journal-bg-...)
        backups[match["id"]] = manifest
    return backups


def paths_of(path: str, manifest: dict) -> list[str]:
    """The data files of one backup: its dump, then the archives its manifest lists."""
    names = [manifest.get("file")] + [entry.get("file") for entry in (manifest.get("files") or {}).values()]
    out = []
    for name in names:
        if not name:
            continue
        if "/" in name or name in (".", ".."):
            raise RotationError(
                f"the manifest of backup {manifest.get('id')} names {name!r}, which is not a file of {path}; "
                "nothing was deleted"
            )
        out.append(os.path.join(path, name))
    return out


def remove(target: str) -> None:
    if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target)
    elif os.path.lexists(target):
        os.unlink(target)


def rotate(module: AnsibleModule) -> dict:
    """Read, plan and delete; the result for exit_json. Raises RotationError or RetentionError."""
    path, app = module.params["path"], module.params["app"]
    backups = read_backups(path, app)
    if module.params["list_only"]:
        listed = sorted(backups.values(), key=lambda m: (str(m.get("time", "")), m["id"]), reverse=True)
        return dict(
            changed=False, plan={}, deleted=[], kept=listed, summary=f"{len(listed)} backups of {app} in {path}"
        )
    entries = [dict(manifest, id=backup_id) for backup_id, manifest in backups.items()]
    pending = module.params["pending"]
    if pending and pending.get("id") not in backups:
        entries.append({"id": pending.get("id"), "time": pending.get("time"), "verified": True})
    result = plan(entries, module.params["policy"], module.params["now"])
    manifests = [os.path.join(path, f"{app}-{backup_id}.json") for backup_id in result["delete"]]
    data = [p for backup_id in result["delete"] for p in paths_of(path, backups[backup_id])]

    deleted = manifests + [p for p in data if os.path.lexists(p)]
    if not module.check_mode:
        for target in deleted:
            try:
                remove(target)
            except OSError as exc:
                raise RotationError(f"rotation could not delete {target}: {exc.strerror}", plan=result) from exc

    delete_verb, keep_verb = ("would delete", "would keep") if module.check_mode else ("deleted", "kept")
    parts = [f"{delete_verb} {i} ({'; '.join(result['reasons'][i])})" for i in result["delete"]]
    parts += [
        f"{keep_verb} {i} ({'; '.join(result['reasons'][i])})"
        f"{' [the backup this run would take]' if i not in backups else ''}"
        for i in result["keep"]
    ]
    summary = f"rotation of {app} in {path}: " + (", ".join(parts) if parts else "no backups")
    kept = [backups[backup_id] for backup_id in result["keep"] if backup_id in backups]
    return dict(changed=bool(deleted), plan=result, deleted=deleted, kept=kept, summary=summary)


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
    failure = None
    try:
        outcome = rotate(module)
    except RetentionError as exc:
        failure = dict(msg=f"{module.params['policy_name']}: {exc}; nothing was deleted")
    except RotationError as exc:
        failure = dict(msg=str(exc), **({"plan": exc.plan} if exc.plan is not None else {}))
    # The backup lock is released whether rotation worked or not: it only kept another backup of
    # the database from publishing or rotating while this one did.
    token = module.params["release_lock"]
    released = False
    if token and not module.check_mode:
        try:
            released = release(os.path.join(module.params["path"], ".lock"), token)["changed"]
        except OSError as exc:
            lock_failure = f"the backup lock could not be released: {exc.strerror}"
            failure = dict(msg=f"{failure['msg']}; {lock_failure}" if failure else lock_failure)
    if failure:
        module.fail_json(lock_released=released, **failure)
    module.exit_json(lock_released=released, **outcome)


if __name__ == "__main__":
    main()
