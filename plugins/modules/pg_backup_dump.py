#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pg_backup_dump
short_description: Dump a PostgreSQL database with exact row counts taken in the same snapshot
version_added: 0.1.0
description:
  - Opens a repeatable-read, read-only transaction, exports its snapshot, and counts the rows of every
    table inside it while C(pg_dump --snapshot) dumps that snapshot, so the counts describe exactly
    the data in the dump (they are what M(opsbook.webstack.pg_dump_verify) compares at its C(content) level).
  - Writes the dump to O(dest), which must not exist. On failure, whatever was written is removed.
  - With O(verify=content) (custom format), the dump is verified while it is written. The module
    reads every data block's framing as pg_dump writes it and feeds the same bytes to
    C(pg_restore -a -f -), which decompresses every block and must do so without a complaint; the
    rows of each table's COPY data in its output are counted (every block must end with the end
    marker) and compared with the snapshot's counts. Once pg_dump has finished, the rewritten TOC
    is checked against every block read, and every table in it must have had its COPY data
    written. This is the C(content) level of M(opsbook.webstack.pg_dump_verify) without a second
    pass over the file and with one decompression, so verification ends about when the dump does.
    A dump that fails it is removed and the module fails naming the reason.
  - Returns what a backup manifest needs; the backup role writes the manifest.
  - With O(prepare), the backup role's first step happens in the same call, before the dump.
    The backup directory is made
    or corrected; a backup whose O(prepare.done) exists is not taken again (RV(done), nothing
    dumped, no lock); otherwise the backup lock C(<prepare.path>/.lock) is taken. Run as root,
    the module then drops to O(prepare.owner) (its primary and supplementary groups) for the
    lock and the dump, as C(become_user) would. When the dump fails, the lock is released.
  - The password never appears in a command line; C(pg_dump) gets it through its environment.
  - With O(container), the snapshot's transaction is a C(psql) session in the container and C(pg_dump) writes
    the custom format to its stdout, which is O(dest) (C(0600) from its first byte); with O(verify=content),
    C(pg_restore -a -f -) in the container reads the same bytes. The archive's TOC then holds no data
    offsets (pg_dump cannot seek back in a pipe), as with C(pg_dump -Fc > file); pg_restore reads it in order.
options:
  database:
    description: Database to dump.
    type: str
    required: true
  dest:
    description: Path of the dump (a file, or a directory for O(format=directory)); must not exist.
    type: path
    required: true
  format:
    description: pg_dump archive format.
    type: str
    choices: [custom, directory]
    default: custom
  jobs:
    description: Parallel jobs (directory format only).
    type: int
    default: 1
  compress:
    description: Compression level 0-9 (0 writes an uncompressed archive).
    type: int
    default: 6
  verify:
    description:
      - V(content) verifies the archive while it is written (see the description); only with
        O(format=custom). V(none) leaves verification to M(opsbook.webstack.pg_dump_verify).
    type: str
    choices: [none, content]
    default: none
  migrations:
    description:
      - V(django) reads the applied migrations per app from C(public.django_migrations) in the
        dump's snapshot, so the manifest records the schema state of exactly the data dumped
        (an empty list when the database has no such table). V(none) reads nothing.
    type: str
    choices: [none, django]
    default: none
  login_user:
    description:
      - Role to connect as. Empty means the operating-system user the module runs as (with O(prepare), as
        root, the O(prepare.owner)), as C(pg_dump) does.
    type: str
    default: ""
    aliases: [login]
  prepare:
    description:
      - Prepare the backup directory and take the backup lock first (see the description).
    type: dict
    suboptions:
      path:
        description: The backup directory.
        type: path
        required: true
      owner:
        description:
          - User that owns O(prepare.path), with its primary group; the dump runs as this user
            when the module runs as root.
        type: str
        required: true
      mode:
        description: Mode of O(prepare.path), octal digits.
        type: str
        default: "0700"
      done:
        description: File name in O(prepare.path) whose presence means this backup was published already.
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
            description:
              - A lock without a heartbeat for this many seconds is stale and taken over. The dump
                heartbeats the lock while it runs (every O(prepare.lock.stale_after)/4 s, at most
                60 s), so a dump longer than this keeps its lock.
            type: int
            default: 21600
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - opsbook.webstack.postgres
attributes:
  check_mode:
    support: full
    details: In check mode nothing is dumped; the result says what would be written.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - psycopg (3) or psycopg2 on the host that runs the module (not with O(container))
  - pg_dump of the server's major version or newer (in the container with O(container))
  - the docker CLI, with O(container)
seealso:
  - module: opsbook.webstack.pg_dump_verify
author:
  - opsbook engineers (@opsbook)
"""

EXAMPLES = r"""
- name: Dump the app database with row counts from the same snapshot
  opsbook.webstack.pg_backup_dump:
    database: journal
    dest: /var/backups/journal/.tmp-20261122T030000Z.dump
  become: true
  become_user: postgres
  register: dump
"""

RETURN = r"""
done:
  description: With O(prepare), whether O(prepare.done) exists (published already; nothing dumped, no lock).
  returned: always
  type: bool
directory:
  description: With O(prepare), what was done to O(prepare.path) (V(created), V(corrected), V(ok)).
  returned: with O(prepare)
  type: str
lock:
  description:
    - With O(prepare), the backup lock (C(taken), C(path), C(holder), and C(taken_over) when a stale
      lock was taken over). After a failed dump, C(taken) is false (the lock was released).
  returned: with O(prepare)
  type: dict
dest:
  description: Path written.
  returned: always
  type: str
  sample: /var/backups/journal/.tmp-20261122T030000Z.dump
format:
  description: Archive format.
  returned: always
  type: str
  sample: custom
compression:
  description: Compression level used.
  returned: always
  type: int
  sample: 6
migrations:
  description: Applied migrations per app in the dump's snapshot (O(migrations=django)); empty otherwise.
  returned: success
  type: list
  elements: dict
  sample: [{"app": "articles", "latest": "0002_article_summary", "applied": 2}]
snapshot:
  description: Exported snapshot id the counts and the dump share.
  returned: success, not in check mode
  type: str
  sample: 00000004-0000001B-1
tables:
  description: Exact row count per schema.table, counted in the dump's snapshot.
  returned: success, not in check mode
  type: dict
  sample: {"public.articles_article": 1200}
size:
  description: Bytes written.
  returned: success, not in check mode
  type: int
  sample: 1048576
sha256:
  description: sha256 of the file, or for a directory of its sorted sha256sum listing.
  returned: success, not in check mode
  type: str
  sample: 9f2c...
server_version:
  description: Server version.
  returned: success, not in check mode
  type: str
  sample: "15.18"
pg_dump_version:
  description: pg_dump version.
  returned: success, not in check mode
  type: str
  sample: "15.18"
duration:
  description: Seconds taken (counting and dumping).
  returned: success, not in check mode
  type: float
  sample: 2.5
verification:
  description:
    - With O(verify=content), what was checked while the dump was written; C(seconds_after_dump) is
      how long verification went on after pg_dump exited.
    - On failure, C(reason) is the stable code of M(opsbook.webstack.pg_dump_verify)
      (C(truncated), C(decompression_error), C(row_count_mismatch), C(pg_restore_failed), ...).
  returned: O(verify=content)
  type: dict
  sample: {"level": "content", "during_dump": true, "tables": 12, "rows": 48211, "data_bytes": 9120344,
           "pg_restore_read": true, "seconds_after_dump": 0.21}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.opsbook.webstack.plugins.module_utils.lock import keep_alive
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_dump import Failed, dump
from ansible_collections.opsbook.webstack.plugins.module_utils.postgres import postgres_common_argument_spec
from ansible_collections.opsbook.webstack.plugins.module_utils.prepare import (
    PREPARE_SPEC,
    PrepareError,
    check,
    done_or_lock,
    ensure_directory,
    give_back,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.processes import as_user


def work(p: dict, check_mode: bool, result: dict, directory: str | None, warnings: list) -> dict:
    """As the dump's user: with prepare, published already or the lock; then the dump.

    The result's fields; raises Failed (a lock this call took is released first)."""
    prepared = None
    if p["prepare"]:
        try:
            prepared = done_or_lock(p["prepare"], directory, check_mode, warnings.append)
        except PrepareError as exc:
            raise Failed(exc.msg, **exc.extra) from None
        except OSError as exc:
            raise Failed(
                f"could not take the backup lock in {p['prepare']['path']}: {exc}; nothing was dumped"
            ) from None
        result.update(directory=prepared["directory"], done=prepared["done"], lock=prepared["lock"])
        if prepared["done"]:
            result.update(
                changed=prepared["changed"], msg=f"{p['prepare']['done']} exists: published already, not taken again"
            )
            return result
    try:
        if prepared is None or not prepared["lock"]["taken"]:
            return dump(p, check_mode, result)
        # A dump can outlast stale_after: it heartbeats the lock while it runs (module_utils/lock.py).
        lock = p["prepare"]["lock"]
        with keep_alive(prepared["lock"]["path"], lock["token"], stale_after=lock["stale_after"]):
            return dump(p, check_mode, result)
    except BaseException:  # Failed, or anything unforeseen: the lock must not stay held
        if prepared is not None:
            give_back(prepared, p["prepare"]["lock"]["token"])
            result["lock"] = prepared["lock"]
        raise


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "database": {"type": "str", "required": True},
            "dest": {"type": "path", "required": True},
            "format": {"type": "str", "choices": ["custom", "directory"], "default": "custom"},
            "jobs": {"type": "int", "default": 1},
            "compress": {"type": "int", "default": 6},
            "verify": {"type": "str", "choices": ["none", "content"], "default": "none"},
            "migrations": {"type": "str", "choices": ["none", "django"], "default": "none"},
            **postgres_common_argument_spec(login_user_default=""),
            "prepare": {"type": "dict", "options": PREPARE_SPEC},
        },
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": True, "dest": p["dest"], "format": p["format"], "compression": p["compress"], "done": False}
    if not 0 <= p["compress"] <= 9:
        module.fail_json(msg=f"compress must be 0-9, got {p['compress']}", **result)
    if p["jobs"] < 1 or (p["jobs"] > 1 and p["format"] != "directory"):
        module.fail_json(msg="jobs must be 1, or more than 1 only with format=directory", **result)
    if p["verify"] == "content" and p["format"] != "custom":
        module.fail_json(
            msg="verify=content needs format=custom; verify a directory archive with pg_dump_verify", **result
        )
    if p["container"] and p["format"] != "custom":
        module.fail_json(
            msg=f"format={p['format']} cannot stream out of container {p['container']}: only the custom format "
            "streams (in the backup role: backup_format custom with app_db_compose_service)",
            **result,
        )
    directory, owner = None, None
    if p["prepare"]:
        # The backup directory as the module's user (root, in the backup role): made or corrected.
        try:
            uid, gid, mode = check(p["prepare"])
            directory = ensure_directory(p["prepare"]["path"], uid, gid, mode, module.check_mode)
        except PrepareError as exc:
            module.fail_json(**{**result, **exc.extra, "msg": exc.msg})
        except OSError as exc:
            module.fail_json(msg=f"could not prepare {p['prepare']['path']}: {exc}; nothing was dumped", **result)
        if os.geteuid() == 0 and uid != 0:
            owner = (uid, gid)

    warnings: list[str] = []
    if owner is not None:
        ok, fields = as_user(
            *owner, lambda: work(p, module.check_mode, result, directory, warnings), result, warnings, Failed
        )
    else:
        try:
            ok, fields = True, work(p, module.check_mode, result, directory, warnings)
        except Failed as exc:
            ok, fields = False, {**result, **exc.fields}
    for warning in warnings:
        module.warn(warning)
    if ok:
        module.exit_json(**fields)
    module.fail_json(**fields)


if __name__ == "__main__":
    main()
