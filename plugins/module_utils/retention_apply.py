# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention applied to an app's published backups in a directory, shared by backup_retention and
backup_publish (module_utils/retention.py plans; this reads, deletes and unlocks).

Reads the manifests (<app>-<id>.json whose app and id agree with the name), plans with the pure
retention.plan, and deletes each backup's manifest first, then its data; releases the backup
lock a run holds, whether that worked or not.
"""

from __future__ import annotations

import json
import os
import re
import shutil

from ansible_collections.opsbook.webstack.plugins.module_utils.lock import release
from ansible_collections.opsbook.webstack.plugins.module_utils.retention import (
    RetentionError,
    UnsafeNameError,
    check_policy,
    data_files,
    plan,
)

__all__ = [
    "RetentionApplyError",
    "RetentionError",
    "apply_retention",
    "check_policy",
    "data_files",
    "read_backups",
    "release_backup_lock",
]


class RetentionApplyError(Exception):
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
        raise RetentionApplyError(f"cannot list {path}: {exc.strerror}") from None
    for entry in names:
        match = name.match(entry)
        full = os.path.join(path, entry)
        if not match or os.path.islink(full) or not os.path.isfile(full):
            continue
        try:
            with open(full, encoding="utf-8") as handle:
                manifest = json.load(handle)
        except (OSError, ValueError) as exc:
            raise RetentionApplyError(f"cannot read the manifest {full}: {exc}; nothing was deleted") from None
        if not isinstance(manifest, dict) or manifest.get("app", app) != app or manifest.get("id") != match["id"]:
            continue  # another app's backup whose name shares the prefix (journal-bg-...)
        backups[match["id"]] = manifest
    return backups


def paths_of(path: str, manifest: dict) -> list[str]:
    """The data files of one backup: its dump, then the archives its manifest lists (names checked by data_files)."""
    try:
        return [os.path.join(path, name) for name in data_files(manifest, path)]
    except UnsafeNameError as exc:
        raise RetentionApplyError(f"{exc}; nothing was deleted") from None


def remove(target: str) -> None:
    if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target)
    elif os.path.lexists(target):
        os.unlink(target)


def apply_retention(
    path: str,
    app: str,
    policy: dict,
    *,
    now: str | None = None,
    pending: dict | None = None,
    list_only: bool = False,
    check_mode: bool = False,
) -> dict:
    """Read, plan and delete; the result for exit_json. Raises RetentionApplyError or RetentionError.

    pending is a backup this run would publish but has not (check mode): planned as the newest
    verified backup, never deleted, not in kept."""
    backups = read_backups(path, app)
    if list_only:
        listed = sorted(backups.values(), key=lambda m: (str(m.get("time", "")), m["id"]), reverse=True)
        return dict(
            changed=False, plan={}, deleted=[], kept=listed, summary=f"{len(listed)} backups of {app} in {path}"
        )
    entries = [dict(manifest, id=backup_id) for backup_id, manifest in backups.items()]
    if pending and pending.get("id") not in backups:
        entries.append({"id": pending.get("id"), "time": pending.get("time"), "verified": True})
    result = plan(entries, policy, now)
    manifests = [os.path.join(path, f"{app}-{backup_id}.json") for backup_id in result["delete"]]
    data = [p for backup_id in result["delete"] for p in paths_of(path, backups[backup_id])]

    deleted = manifests + [p for p in data if os.path.lexists(p)]
    if not check_mode:
        for target in deleted:
            try:
                remove(target)
            except OSError as exc:
                raise RetentionApplyError(f"retention could not delete {target}: {exc.strerror}", plan=result) from exc

    delete_verb, keep_verb = ("would delete", "would keep") if check_mode else ("deleted", "kept")
    parts = [f"{delete_verb} {i} ({'; '.join(result['reasons'][i])})" for i in result["delete"]]
    parts += [
        f"{keep_verb} {i} ({'; '.join(result['reasons'][i])})"
        f"{' [the backup this run would take]' if i not in backups else ''}"
        for i in result["keep"]
    ]
    summary = f"rotation of {app} in {path}: " + (", ".join(parts) if parts else "no backups")
    kept = [backups[backup_id] for backup_id in result["keep"] if backup_id in backups]
    return dict(changed=bool(deleted), plan=result, deleted=deleted, kept=kept, summary=summary)


def release_backup_lock(path: str, token: str | None, check_mode: bool) -> tuple[bool, str | None]:
    """Release the backup lock (<path>/.lock) if token holds it: (released, error message or None).

    Nothing is released in check mode or without a token; a lock another token holds is left alone."""
    if not token or check_mode:
        return False, None
    try:
        return release(os.path.join(path, ".lock"), token)["changed"], None
    except OSError as exc:
        return False, f"the backup lock could not be released: {exc.strerror}"
