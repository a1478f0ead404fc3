#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: backup_publish
short_description: Write a verified backup's manifest and publish it with atomic renames
version_added: "0.1.0"
description:
  - The last step of the backup role, in one call on the database host. The dump and the
    archives were written under temporary names in O(path); this module checks that each
    media or configuration archive decompresses whole, takes its size and sha256, writes the
    manifest (O(manifest) plus C(files)) under a temporary name, then renames the archives,
    the dump and the manifest (last, as a manifest marks a complete backup) to their published
    names, and replaces the C(latest) and C(latest.json) links by a rename each.
  - Every rename is atomic on its own. A failure before the renames leaves the temporary
    files for the caller to remove (the backup role's rescue does) and publishes nothing.
  - Published names and temporary names must be plain file names inside O(path).
  - The manifest is written as C(.tmp-<id>.json) beside the dump's temporary name
    C(.tmp-<id>.<ext>) first, mode 0600, owned by O(owner) when that is set; the dump and
    the archives keep their modes.
author: opsbook engineers (@opsbook)
extends_documentation_fragment:
  - opsbook.webstack.backup_dir
options:
  dump:
    description: Temporary name of the dump (a file, or a directory-format dump's directory) in O(path).
    type: str
    required: true
  name:
    description: Published name of the dump; the manifest is published as C(<name without extension>.json).
    type: str
    required: true
  manifest:
    description:
      - The manifest to write (id, app, time, database, tables, sha256, verification...).
        Its C(file) is set to O(name) and its C(files) to the archives' entries.
    type: dict
    required: true
  archives:
    description: Media and configuration archives to publish with the dump, gzip-compressed tar files.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Key of the archive under C(files) in the manifest (C(media), C(config-app1)).
        type: str
        required: true
      src:
        description: Its temporary name in O(path).
        type: str
        required: true
      dest:
        description: Its published name in O(path).
        type: str
        required: true
  bundle:
    description:
      - Temporary name in O(path) of an uncompressed tar holding the archives as
        C(<archives[].name>.tar.gz) (the backup role sends the media and configuration archives
        from the controller in one copy). Each is checked as it is extracted to its
        O(archives[].src) name, mode 0600, owned by O(owner); the bundle is removed afterwards.
      - A member that is not one of O(archives), is not a regular file, or is missing fails the
        module; nothing is published.
    type: str
  owner:
    description: Owner (and group) of the manifest and links; the current user when empty.
    type: str
    default: ""
  rotate:
    description:
      - Once the backup is published, rotate the app's published backups in O(path) in the same
        call, as M(opsbook.webstack.backup_retention) does (the same code; manifests first, the newest
        verified backup never deleted). The policy is checked before anything is published.
      - A rotation failure after publication fails the module with a message that says the
        backup was published; RV(published) lists it.
    type: dict
    suboptions:
      app:
        description: The app whose backups are rotated; the manifests are C(<app>-<id>.json).
        type: str
        required: true
      policy:
        description:
          - Retention rules, as M(opsbook.webstack.backup_retention)'s
            O(opsbook.webstack.backup_retention#module:policy).
        type: dict
        default: {}
      policy_name:
        description: The variable that sets O(rotate.policy), named in error messages.
        type: str
        default: backup_retention
  release_lock:
    description:
      - The token of the backup lock (C(<path>/.lock)) this run took with
        O(opsbook.webstack.pg_backup_dump#module:prepare), released at the end of the call whatever happened
        (publication and rotation ran under it). A lock another token holds is left alone;
        nothing is released in check mode.
    type: str
attributes:
  check_mode:
    support: full
    description:
      - Reports what would be published; nothing is read, written or renamed. With O(rotate),
        RV(rotation) plans with this backup counted as published and says what would be deleted.
"""

EXAMPLES = r"""
- name: Publish backup 20261129T030000Z of journal
  opsbook.webstack.backup_publish:
    path: /var/backups/opsbook/journal
    dump: .tmp-20261129T030000Z.dump
    name: journal-20261129T030000Z.dump
    manifest: "{{ manifest_data }}"
    archives:
      - {name: media, src: .tmp-20261129T030000Z-media.tar.gz, dest: journal-20261129T030000Z-media.tar.gz}
    owner: postgres
"""

RETURN = r"""
manifest:
  description: The manifest as written.
  returned: success
  type: dict
published:
  description: Published paths in the order they were renamed, the manifest last.
  returned: always
  type: list
  elements: str
rotation:
  description:
    - With O(rotate), what rotation did (in check mode, would do), as
      M(opsbook.webstack.backup_retention) returns it.
  returned: success, with O(rotate)
  type: dict
  contains:
    plan:
      description: The plan, newest first, with the reasons each backup is kept or deleted.
      type: dict
    deleted:
      description: Paths deleted (in check mode, that would be), manifests first.
      type: list
      elements: str
    kept:
      description: The manifests of the backups kept, newest first.
      type: list
      elements: dict
    summary:
      description: One line for people, naming each backup kept and deleted and why.
      type: str
rotation_plan:
  description: The rotation's plan when rotation failed while deleting (what it meant to delete).
  returned: when rotation failed after planning
  type: dict
lock_released:
  description: Whether O(release_lock) released the lock.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.publish import PublishError, publish
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
            dump=dict(type="str", required=True),
            name=dict(type="str", required=True),
            manifest=dict(type="dict", required=True),
            archives=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    src=dict(type="str", required=True),
                    dest=dict(type="str", required=True),
                ),
            ),
            bundle=dict(type="str"),
            owner=dict(type="str", default=""),
            rotate=dict(
                type="dict",
                options=dict(
                    app=dict(type="str", required=True),
                    policy=dict(type="dict", default={}),
                    policy_name=dict(type="str", default="backup_retention"),
                ),
            ),
            release_lock=dict(type="str", no_log=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    published: list[str] = []
    result: dict = {}
    failure = None
    try:
        manifest = publish(p, module.check_mode, published)
        result = dict(changed=True, manifest=manifest)
    except PublishError as exc:
        failure = str(exc)
    if failure is None and p["rotate"]:
        # Under the backup lock, after publication: the new backup counts (check mode: as pending).
        pending = {"id": manifest.get("id"), "time": manifest.get("time")} if module.check_mode else None
        try:
            result["rotation"] = apply_retention(
                p["path"], p["rotate"]["app"], p["rotate"]["policy"], pending=pending, check_mode=module.check_mode
            )
        except (RetentionError, RetentionApplyError) as exc:
            if getattr(exc, "plan", None) is not None:
                result["rotation_plan"] = exc.plan
            state = "would be published" if module.check_mode else "was published"
            failure = f"backup {manifest.get('id')} {state} ({published[-1]}); rotation failed: {exc}"
    released, lock_failure = release_backup_lock(p["path"], p["release_lock"], module.check_mode)
    if lock_failure:
        failure = f"{failure}; {lock_failure}" if failure else lock_failure
    if failure:
        module.fail_json(msg=failure, published=published, lock_released=released, **result)
    module.exit_json(published=published, lock_released=released, **result)


if __name__ == "__main__":
    main()
