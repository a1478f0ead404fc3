#!/usr/bin/python
# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_dump_verify
short_description: Verify a pg_dump backup, from its header up to a test restore
version_added: "0.1.0"
description:
  - Verifies the output of C(pg_dump) at increasing levels; each level includes the ones before it.
  - C(header) detects the format from the content (never from the file name) and parses the header in Python
    (archive version, compression, database name, server and pg_dump versions, creation time).
  - C(structure) parses the table of contents and checks that every data member is present and complete
    (custom format - every data block walked from the end of the TOC to the end of the file; directory
    format - every data file; tar format - every member and the end-of-archive marker; plain SQL - every
    COPY block terminated and pg_dump's completion trailer present).
  - C(read) decompresses all data (zlib/gzip), checks each table's COPY data ends with pg_dump's end
    marker, counts rows, and runs C(pg_restore -f /dev/null) on archive formats; a pg_restore error or a
    warning such as C(no data will be available) fails the level.
  - C(content) compares the row count of every table, read from the archive, with the O(manifest);
    compares the sha256 of the archive with O(checksum) or the manifest's; checks that every table of
    O(expect_tables) is present with rows.
  - C(restore) restores the archive into a new scratch database (C(pg_restore), or C(psql) for plain SQL),
    counts the rows of every table there, compares them with the archive and the manifest, and drops the
    scratch database whatever happened.
  - For archive formats (custom, directory, tar) at level C(restore), C(pg_restore) loads the scratch
    database while the module runs the C(read) and C(content) levels, so verifying costs little more
    than the restore itself; that restore reads every data item, so the C(pg_restore -f /dev/null)
    read is not run beside it. A failure at C(read) or C(content) still fails the run at that level,
    after the scratch database is dropped. Plain SQL is restored only after it is read (its
    psql meta-commands are found by reading it).
  - C(pg_restore -l) only reads the header and the table of contents; it exits 0 on a custom archive
    truncated anywhere after the TOC, so this module never relies on it.
  - The module never changes anything outside the scratch database it creates and drops; it always
    reports C(changed=false).
  - The connection options (O(login_user) and the others, shared with M(opsbook.webstack.pg_backup_dump))
    are used by the C(restore) level only; O(login_user) needs C(CREATEDB) (or superuser). The password goes
    to C(psql) and C(pg_restore) in a temporary C(0600) passfile (C(PGPASSFILE)), never in their environment.
options:
  path:
    description:
      - The backup to verify, on the managed host - a file (custom, tar, plain SQL, gzip-compressed plain
        SQL) or a directory (directory format, the one containing C(toc.dat)).
    type: path
    required: true
  level:
    description:
      - How far to verify; each level includes the ones before it.
      - C(header) - format, archive version, compression, database, versions, creation time.
      - C(structure) - TOC, and every data member present and complete.
      - C(read) - all data decompressed and row counts read; C(pg_restore -f /dev/null) on archive formats.
      - C(content) - row counts compared with the manifest, sha256 compared, O(expect_tables) present with rows.
      - C(restore) - restore into a scratch database, row counts compared, scratch database dropped.
        Skipped in check mode.
    type: str
    choices: [header, structure, read, content, restore]
    default: content
  manifest:
    description:
      - Path, on the managed host, of the backup's manifest, a JSON object. The keys this module reads,
        all optional - C(sha256) (hex digest of the file; for a directory archive, of the listing
        C(cd DIR && LC_ALL=C sha256sum * | sha256sum)), C(tables) (object mapping C(schema.table) to its
        exact row count), C(format) (C(custom), C(directory), C(tar), C(plain) or C(plain_gzip)),
        C(database) (the database that was dumped) and C(size) (bytes). Other keys are ignored, so the
        backup role's manifest (id, created, release, ...) can be given as is.
      - 'Example - C({"format": "custom", "sha256": "9f2c...", "tables": {"public.orders": 4000, "audit.log": 2000}}).'
      - Every table listed must be in the archive with exactly that many rows; tables of the archive that
        are not listed are not compared.
      - The row counts are compared at level C(content) and again after the test restore at level C(restore).
    type: path
  checksum:
    description:
      - Expected sha256 of the archive (64 hex digits, optionally prefixed with C(sha256:)); overrides the
        manifest's C(sha256). Compared at level C(content).
      - Without a checksum, a changed byte inside uncompressed data (C(pg_dump -Z0), tar, plain SQL) can
        go unnoticed by every other check.
    type: str
  expect_tables:
    description:
      - Tables (C(schema.table); a name without schema means C(public)) that must be in the archive with at
        least one row. Catches a valid dump of the wrong database. Checked at level C(content).
    type: list
    elements: str
    default: []
  maintenance_db:
    description:
      - Database to connect to for creating and dropping the scratch database.
    type: str
    default: postgres
  connect_timeout:
    description:
      - Seconds to wait for each connection to the server.
    type: int
    default: 10
  scratch_db_prefix:
    description:
      - Prefix of the scratch database's name; the module appends the time and random hex digits, so runs
        never collide. Lowercase letters, digits and underscores, at most 30 characters.
    type: str
    default: pg_dump_verify
  trust_manifest_verification:
    description:
      - When the O(manifest) records that the backup was verified when it was taken (C(verified) true,
        C(verification.level) C(read), C(content) or C(restore), as the backup role writes it) and the
        archive's sha256 equals the manifest's, the C(read) level is met by that record instead of a
        second pass that decompresses everything; the rows per table are the manifest's. The file is
        then bit for bit the one that was read and counted. A different sha256 fails the C(read)
        level (C(checksum_mismatch)). Without such a record the archive is read as usual.
      - Meant for restore drills (level C(restore)), where the test restore reads every data item
        anyway and its row counts are compared with the manifest.
    type: bool
    default: false
  restore_jobs:
    description:
      - Parallel jobs for C(pg_restore -j) at the C(restore) level (custom and directory formats), and
        connections counting the restored rows at once (all formats).
      - With O(container) the archive streams to C(pg_restore) through a pipe, which it reads with one job; the
        rows are still counted on this many connections.
    type: int
    default: 1
  restore_no_owner:
    description:
      - Restore without ownership and privileges (C(pg_restore --no-owner --no-privileges)), so roles of the
        dumped server need not exist on the verification server. Plain SQL is restored as written.
    type: bool
    default: true
  restore_create:
    description:
      - How the C(restore) level creates its database, as a real restore creates the new one (the
        restore role passes the live database's settings to both its drill and its restore, so the two
        restore the same way).
      - C(owner), C(template), C(encoding), C(lc_collate), C(lc_ctype); unset keys use the server's defaults.
    type: dict
    default: {}
    version_added: 0.2.0
  restore_database:
    description:
      - Name of the database the C(restore) level creates and loads, instead of a scratch name made from
        O(scratch_db_prefix). It must not exist (the module never loads into, or drops, a database it did not
        create). Lowercase letters, digits and underscores, at most 63 characters.
    type: str
    version_added: 0.2.0
  restore_keep:
    description:
      - Keep the database of the C(restore) level when every level passed (the row counts compared), instead
        of dropping it; it is dropped whenever a level fails. Needs O(restore_database). The restore role's
        real restore loads its new database this way, the drill the same way without keeping it.
    type: bool
    default: false
    version_added: 0.2.0
  timeout:
    description:
      - Seconds each external command (C(pg_restore), C(psql)) may run before the module stops it and fails,
        naming the command.
    type: int
    default: 3600
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - opsbook.webstack.postgres
attributes:
  check_mode:
    support: full
    details: Levels up to C(content) only read; in check mode the C(restore) level is skipped and
      RV(skipped_levels) says so.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - C(pg_restore) for the C(read) level on custom, directory and tar archives.
  - C(pg_restore) and C(psql), and a PostgreSQL server, for the C(restore) level.
notes:
  - Row counts are read from the COPY data in the archive. Tables dumped as INSERT statements
    (C(pg_dump --inserts)) have no count before the C(restore) level; a manifest count for such a table
    fails the C(content) level unless O(level=restore).
  - Plain SQL is restored with C(psql --single-transaction -v ON_ERROR_STOP=1). A plain dump made with
    C(--create) contains C(\connect), which would leave the scratch database; the C(restore) level refuses it.
  - Reads C(none) and C(gzip) compression (all that PostgreSQL 15's pg_dump writes). Archives compressed
    with lz4 or zstd (PostgreSQL 16+) pass C(header) and C(structure), then fail C(read) with
    RV(reason=unsupported_compression).
seealso:
  - module: community.postgresql.postgresql_db
    description: Dump and restore databases (it does not verify the archives).
  - module: community.postgresql.postgresql_query
  - name: pg_dump
    description: The archive formats and their options.
    link: https://www.postgresql.org/docs/current/app-pgdump.html
  - name: pg_restore
    description: What pg_restore -l and pg_restore -f /dev/null read, and their options.
    link: https://www.postgresql.org/docs/current/app-pgrestore.html
author:
  - opsbook engineers (@opsbook)
"""

EXAMPLES = r"""
- name: BACKUP | Verify the new dump against its manifest before publishing it
  opsbook.webstack.pg_dump_verify:
    path: /var/backups/journal/2025-06-01T0300.dump
    manifest: /var/backups/journal/2025-06-01T0300.json
    level: content
  register: backup_register_verify

- name: RESTORE | Refuse a backup that is not the journal database
  opsbook.webstack.pg_dump_verify:
    path: "{{ restore_backup_path }}"
    level: read
    expect_tables:
      - public.journal_entry
      - public.django_migrations

- name: BACKUP | Only the file's checksum and structure, for a copy on the backup store
  opsbook.webstack.pg_dump_verify:
    path: /srv/backup-store/journal/2025-06-01T0300.dump
    level: content
    checksum: "sha256:9f2c5d0e1b7a4c3e8d6f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f"

- name: RESTORE | Drill - restore into a scratch database, compare row counts, drop it
  opsbook.webstack.pg_dump_verify:
    path: /var/backups/journal/latest.dump
    manifest: /var/backups/journal/latest.json
    level: restore
    login_host: 127.0.0.1
    login_user: backup_verifier
    login_password: "{{ vault_backup_verifier_password }}"
    restore_jobs: 2
  register: restore_register_drill

- name: RESTORE | Show how long the drill restore took
  ansible.builtin.debug:
    msg: "restored in {{ restore_register_drill.durations.restore }} s: {{ restore_register_drill.tables }}"
"""

RETURN = r"""
path:
  description: The archive that was verified.
  returned: always
  type: str
  sample: /var/backups/journal/2025-06-01T0300.dump
level:
  description: The level that was asked for.
  returned: always
  type: str
  sample: content
level_reached:
  description: The highest level that passed; null when even C(header) failed.
  returned: always
  type: str
  sample: content
levels_passed:
  description: Every level that passed, in order.
  returned: always
  type: list
  elements: str
  sample: [header, structure, read, content]
skipped_levels:
  description: Levels that were asked for but not run (C(restore) in check mode).
  returned: always
  type: list
  elements: str
  sample: [restore]
durations:
  description: Seconds spent in each level that ran (including the one that failed).
  returned: always
  type: dict
  sample: {header: 0.001, structure: 0.004, read: 0.112, content: 0.006}
failed_level:
  description: The level that failed; null when the arguments or the manifest were invalid.
  returned: failure
  type: str
  sample: structure
reason:
  description:
    - Why it failed, as a stable code - C(not_found), C(empty), C(not_an_archive), C(unsupported_version),
      C(unsupported_compression), C(truncated), C(missing_member), C(corrupt), C(decompression_error),
      C(pg_restore_failed), C(format_mismatch), C(database_mismatch), C(missing_table), C(empty_table),
      C(rows_not_countable), C(row_count_mismatch), C(size_mismatch), C(checksum_mismatch),
      C(unsafe_sql), C(restore_error), C(timeout), C(tool_missing), C(manifest_invalid),
      C(invalid_argument), C(unreadable), C(error).
    - The message (C(msg)) says what is wrong, in terms of the file (which table, which byte), and what to do.
  returned: failure
  type: str
  sample: truncated
format:
  description: Format detected from the content.
  returned: when the header level ran far enough to detect it
  type: str
  choices: [custom, directory, tar, plain, plain_gzip]
  sample: custom
archive_version:
  description: pg_dump archive version (as C(pg_restore -l) prints it); null for plain SQL.
  returned: when the header was read
  type: str
  sample: 1.14-0
compression:
  description: Compression of the data - C(none), C(gzip), C(lz4) or C(zstd).
  returned: when the header was read
  type: str
  sample: gzip
compression_level:
  description: Compression level recorded in the header (-1 is zlib's default); null when not recorded.
  returned: when the header was read
  type: int
  sample: -1
database:
  description: Name of the dumped database; null for plain SQL dumped without C(--create).
  returned: when the header was read
  type: str
  sample: journal
server_version:
  description: Version of the server that was dumped.
  returned: when the header was read
  type: str
  sample: 15.18 (Debian 15.18-0+deb12u1)
pg_dump_version:
  description: Version of the pg_dump that wrote the archive.
  returned: when the header was read
  type: str
  sample: 15.18 (Debian 15.18-0+deb12u1)
created:
  description:
    - When pg_dump started, in the local time of the machine that ran it (the archive records no time zone);
      for plain SQL only when dumped with C(--verbose).
  returned: when the header was read
  type: str
  sample: "2025-06-01 03:00:02"
size:
  description: Size of the archive in bytes (for a directory, of all its files).
  returned: when the header was read
  type: int
  sample: 506945
toc_entries:
  description: Number of entries in the table of contents; null for plain SQL.
  returned: when the structure level ran
  type: int
  sample: 28
data_members:
  description: Number of data items (one per table with data, plus large-object groups).
  returned: when the structure level ran
  type: int
  sample: 4
tables:
  description:
    - Row count of every table with data in the archive, by C(schema.table), read from the COPY data.
    - Null for a table until the C(read) level, and for tables dumped as INSERT statements until C(restore).
  returned: when the structure level ran
  type: dict
  sample: {public.customers: 3000, public.orders: 4000, audit.log: 2000}
large_objects:
  description: Number of large objects in the archive.
  returned: when the read level ran
  type: int
  sample: 0
data_bytes:
  description: Size of all table and large-object data once decompressed, in bytes.
  returned: when the read level ran
  type: int
  sample: 1291250
sha256:
  description: sha256 of the archive (for a directory, of the sorted C(sha256sum) listing of its files).
  returned: when the content level ran
  type: str
  sample: 9f2c5d0e1b7a4c3e8d6f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f
verified:
  description: What the content and restore levels compared.
  returned: when the content level ran
  type: dict
  contains:
    sha256:
      description: Whether a sha256 was given and matched.
      type: bool
    sha256_source:
      description: C(checksum), C(manifest) or null.
      type: str
    row_counts:
      description: Number of tables whose row count was compared with the manifest.
      type: int
    expect_tables:
      description: Number of O(expect_tables) found with rows.
      type: int
  sample: {sha256: true, sha256_source: manifest, row_counts: 4, expect_tables: 1}
mismatches:
  description: Tables whose row count differs from the manifest (or, at the restore level, from the archive).
  returned: when a row count differs
  type: list
  elements: dict
  sample: [{table: public.orders, expected: 4001, actual: 4000}]
read_from_manifest:
  description:
    - With O(trust_manifest_verification), the manifest whose record of an earlier verification
      met the C(read) level.
  returned: when the read level was met by the manifest
  type: dict
  sample: {manifest: /var/backups/opsbook/journal/journal-20261129T030000Z.json, verified_level: content}
restore:
  description: The test restore.
  returned: when the restore level ran
  type: dict
  contains:
    database:
      description: Name of the scratch database (dropped at the end).
      type: str
    tool:
      description: C(pg_restore) or C(psql).
      type: str
    seconds:
      description: Time taken by the restore command alone.
      type: float
    during_read:
      description: Whether the restore ran while the archive was read (archive formats).
      type: bool
    tables:
      description: Row counts counted in the scratch database.
      type: dict
    dropped:
      description: Whether the scratch database was dropped.
      type: bool
    kept:
      description: Whether the database was kept (O(restore_keep), every level passed).
      type: bool
  sample:
    database: pg_dump_verify_20250601030512_5f3a9c1e
    tool: pg_restore
    seconds: 1.42
    tables: {public.orders: 4000}
    dropped: true
"""

import contextlib
import os
import re
import secrets
import threading
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import (
    FORMAT_PLAIN,
    FORMAT_PLAIN_GZIP,
    LEVELS,
    VerifyError,
    compare_counts,
    describe_mismatches,
    load_manifest,
    normalize_sha256,
    normalize_table,
    open_archive,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_container import (
    docker_cli,
    exec_argv,
    run_with_stdin,
    tool,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_scratch import CREATE_KEYS, ScratchRestore, tail
from ansible_collections.opsbook.webstack.plugins.module_utils.postgres import (
    alarming,
    clear_redirecting_env,
    find_tool,
    libpq_env,
    postgres_common_argument_spec,
    write_passfile,
)

# What to do, per reason: the first half of each message says what is wrong.
HINTS = {
    "not_found": "Check the path: the backup may never have been written, or it was rotated out.",
    "empty": "pg_dump wrote nothing: check the backup job's log (disk full, killed, permissions) and take "
    "a new backup.",
    "not_an_archive": "Point path at pg_dump output: a custom (-Fc) or tar (-Ft) file, a directory (-Fd) "
    "archive, or plain SQL (optionally gzip-compressed).",
    "unsupported_version": "Verify it with a newer opsbook.webstack collection and PostgreSQL client tools, "
    "or re-dump with the pg_dump that matches this server.",
    "unsupported_compression": "Verify it at level structure, or re-dump with gzip compression (-Z 0-9).",
    "truncated": "The backup is incomplete (interrupted dump, full disk or partial copy): do not restore from "
    "it; copy it again from its source or take a new backup.",
    "missing_member": "A data file of the archive is gone: copy the archive again from its source or take a "
    "new backup.",
    "corrupt": "The archive is damaged: do not restore from it; use another backup or take a new one.",
    "decompression_error": "The compressed data is damaged: do not restore from it; use another backup or "
    "take a new one.",
    "pg_restore_failed": "pg_restore cannot read all of the data: do not restore from this backup; use "
    "another one or take a new one.",
    "format_mismatch": "The file is not the backup the manifest describes: check the paths.",
    "database_mismatch": "The archive is a dump of another database: check the backup's path.",
    "missing_table": "Check that this is a dump of the right database and that the table was not excluded "
    "(pg_dump -T, --exclude-table-data, -n).",
    "empty_table": "The table was empty when dumped: if it should have rows, the backup was taken from the "
    "wrong database or after data loss.",
    "rows_not_countable": "Use level restore to count these tables, or dump with COPY (without --inserts).",
    "row_count_mismatch": "The archive does not hold the rows the manifest recorded: it is not the backup the "
    "manifest describes, or it was damaged; do not restore from it.",
    "size_mismatch": "The file changed after the manifest was written (partial copy?): do not restore from it.",
    "checksum_mismatch": "The file changed after its checksum was recorded (bit rot, partial copy or another "
    "file): do not restore from it; use another copy.",
    "unsafe_sql": "Verify it at level content, or dump without --create.",
    "restore_error": "Connection problems: check the login_* options and that the role may create databases. "
    "SQL errors: the backup cannot be restored as it is.",
    "timeout": "Raise the timeout option if the archive is that large, or check the server's load.",
    "tool_missing": "Install the PostgreSQL client tools (at least as new as the pg_dump that wrote the "
    "archive) or set pg_bin_dir.",
    "manifest_invalid": "Point manifest at the JSON written beside the backup, or fix it.",
    "unreadable": "Run the task as a user who can read the backup (become, become_user) and check the disk.",
}

_SCRATCH_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,29}$")
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ARCHIVE_FORMATS = ("custom", "directory", "tar")


class Verification:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.archive = None
        self.current_level = None
        self.pending = None  # the scratch restore, once started (see _restore_start)
        self.manifest = None
        self.expected_sha256 = None
        self.sha256_source = None
        self.expect_tables = [normalize_table(t) for t in self.params["expect_tables"] if t and t.strip()]
        self.result = {
            "changed": False,
            "path": self.params["path"],
            "level": self.params["level"],
            "level_reached": None,
            "levels_passed": [],
            "skipped_levels": [],
            "durations": {},
        }

    # ------------------------------------------------------------------ flow

    def run(self) -> None:
        self._check_arguments()
        wanted = list(LEVELS[: LEVELS.index(self.params["level"]) + 1])
        if self.module.check_mode and "restore" in wanted:
            wanted.remove("restore")
            self.result["skipped_levels"] = ["restore"]
        for level in wanted:
            self.current_level = level
            start = time.monotonic()
            try:
                if level == "read" and "restore" in wanted and self.archive.format in _ARCHIVE_FORMATS:
                    # pg_restore loads the scratch database while this process reads the archive:
                    # the restore level then costs little more than the restore itself. A failed
                    # read or content check still fails the run; the scratch database is dropped.
                    self._restore_start(background=True)
                getattr(self, "_level_" + level)()
            except VerifyError as exc:
                self.result["durations"][level] = round(time.monotonic() - start, 3)
                self.abandon_restore()
                self._fail(level, exc)
            except OSError as exc:  # permissions, I/O errors: say which file, not a traceback
                self.result["durations"][level] = round(time.monotonic() - start, 3)
                self.abandon_restore()
                self._fail(level, VerifyError("unreadable", to_native(exc)))
            self.result["durations"][level] = round(time.monotonic() - start, 3)
            self.result["levels_passed"].append(level)
            self.result["level_reached"] = level
        reached = self.result["level_reached"]
        msg = f"{self.params['path']}: {self.result.get('format')} archive verified up to level {reached}"
        if self.result["skipped_levels"]:
            msg += "; check mode: level restore skipped (it would create and drop a scratch database)"
        self.result["msg"] = msg
        self.module.exit_json(**self.result)

    def _fail(self, level: str | None, exc: VerifyError) -> None:
        self.result["failed_level"] = level
        self.result["reason"] = exc.reason
        what = f"level {level} failed" if level else "invalid arguments"
        hint = HINTS.get(exc.reason, "")
        msg = f"pg_dump_verify: {what} ({exc.reason}): {exc.message}." + (" " + hint if hint else "")
        self.module.fail_json(msg=msg, **self.result)

    def _check_arguments(self) -> None:
        params = self.params
        try:
            if params["checksum"]:
                self.expected_sha256 = normalize_sha256(params["checksum"], "checksum")
                self.sha256_source = "checksum"
        except VerifyError as exc:
            self._fail(None, VerifyError("invalid_argument", exc.message))
        if not _SCRATCH_PREFIX.match(params["scratch_db_prefix"]):
            self._fail(
                None,
                VerifyError(
                    "invalid_argument",
                    f"scratch_db_prefix {params['scratch_db_prefix']!r} must be 1-30 lowercase letters, digits "
                    "or underscores, starting with a letter or underscore",
                ),
            )
        if params["restore_database"] is not None and not _DATABASE_NAME.match(params["restore_database"]):
            self._fail(
                None,
                VerifyError(
                    "invalid_argument",
                    f"restore_database {params['restore_database']!r} must be 1-63 lowercase letters, digits or "
                    "underscores, starting with a letter or underscore",
                ),
            )
        unknown = sorted(set(params["restore_create"] or {}) - set(CREATE_KEYS))
        if unknown:
            self._fail(
                None,
                VerifyError(
                    "invalid_argument",
                    f"restore_create takes {', '.join(sorted(CREATE_KEYS))}, not {', '.join(unknown)}",
                ),
            )
        for name in ("restore_jobs", "timeout", "connect_timeout"):
            if params[name] < 1:
                self._fail(None, VerifyError("invalid_argument", f"{name} must be at least 1"))
        if params["manifest"]:
            try:
                self.manifest = load_manifest(params["manifest"])
            except VerifyError as exc:
                self._fail(None, exc)
            self.result["manifest"] = params["manifest"]
            if self.manifest.sha256 and not self.expected_sha256:
                self.expected_sha256 = self.manifest.sha256
                self.sha256_source = "manifest"

    # ------------------------------------------------------------------ levels

    def _level_header(self) -> None:
        self.archive = open_archive(self.params["path"])
        self.result["format"] = self.archive.format
        header = self.archive.header()
        self.result.update(header.as_dict())
        self.result["size"] = self.archive.size
        manifest = self.manifest
        if manifest and manifest.format and manifest.format != header.format:
            raise VerifyError(
                "format_mismatch",
                f"{self.params['path']} is a {header.format} archive, but manifest {manifest.path} records "
                f"format {manifest.format}",
            )
        if manifest and manifest.database and header.database and manifest.database != header.database:
            raise VerifyError(
                "database_mismatch",
                f"{self.params['path']} is a dump of database {header.database!r}, but manifest {manifest.path} "
                f"records database {manifest.database!r}",
            )

    def _level_structure(self) -> None:
        members = self.archive.structure()
        self.result["toc_entries"] = len(self.archive.toc) if self.archive.toc else None
        self.result["data_members"] = len(members)
        self.result["tables"] = self.archive.tables()
        for command in getattr(self.archive, "meta_commands", [])[:5]:
            self.module.warn(f"{self.params['path']} contains the psql meta-command {command}")

    def _vouched_by_manifest(self) -> bool:
        manifest = self.manifest
        return bool(
            self.params["trust_manifest_verification"]
            and manifest
            and manifest.sha256
            and manifest.tables
            and manifest.verified_level in ("read", "content", "restore")
            and self.expected_sha256 == manifest.sha256
            and {m.name for m in self.archive.members if m.is_table} == set(manifest.tables)
        )

    def _read_from_manifest(self) -> None:
        """The read level met by the manifest's record of an earlier verification: same sha256."""
        manifest = self.manifest
        sha256 = self.archive.sha256()
        if sha256 != manifest.sha256:
            raise VerifyError(
                "checksum_mismatch",
                f"the sha256 of {self.params['path']} is {sha256}, but manifest {manifest.path} expects "
                f"{manifest.sha256}: the file changed since it was verified",
            )
        for member in self.archive.members:
            if member.is_table:
                member.rows = manifest.tables[member.name]
        self.result["tables"] = self.archive.tables()
        self.result["read_from_manifest"] = {"manifest": manifest.path, "verified_level": manifest.verified_level}

    def _level_read(self) -> None:
        if self._vouched_by_manifest():
            self._read_from_manifest()
            return
        # pg_restore reads the archive on another core while Python decompresses it here; both must pass.
        outcome: dict = {}
        reader = None
        # While the scratch restore runs, pg_restore reads every data item into it: no second
        # pg_restore into /dev/null.
        if self.archive.format in _ARCHIVE_FORMATS and self.pending is None:
            self._refuse_directory_in_container()
            pg_restore = self._pg_bin("pg_restore")
            reader = threading.Thread(target=self._pg_restore_read, args=(pg_restore, outcome))
            reader.start()
        try:
            self.archive.read()
        finally:
            if reader is not None:
                reader.join()
        self.result["tables"] = self.archive.tables()
        self.result["large_objects"] = self.archive.large_objects()
        self.result["data_bytes"] = self.archive.data_bytes()
        if "error" in outcome:
            raise outcome["error"]
        for line in outcome.get("warnings", []):
            self.module.warn(f"pg_restore: {line}")

    def _pg_restore_read(self, pg_restore: str, outcome: dict) -> None:
        """pg_restore -f /dev/null reads every data item as a restore would; it must say nothing alarming."""
        try:
            if self.params["container"]:  # the archive streamed to pg_restore's stdin in the container
                rc, _output, stderr = self._run(
                    [pg_restore, "-f", os.devnull], "pg_restore -f /dev/null", stdin_path=self.params["path"]
                )
            else:
                rc, _output, stderr = self._run(
                    [pg_restore, "-f", os.devnull, self.params["path"]], "pg_restore -f /dev/null"
                )
        except VerifyError as exc:
            outcome["error"] = exc
            return
        failures = alarming(stderr)
        if rc != 0 or failures:
            detail = tail("\n".join(failures) or stderr) or f"exit status {rc}"
            outcome["error"] = VerifyError(
                "pg_restore_failed",
                f"pg_restore -f /dev/null cannot read {self.params['path']} completely (exit status {rc}): {detail}",
            )
        outcome["warnings"] = [line.strip() for line in stderr.splitlines()[:5] if line.strip()]

    def _level_content(self) -> None:
        path = self.params["path"]
        tables = self.archive.tables()
        members = {m.name: m for m in self.archive.members if m.is_table}
        verified = {"sha256": False, "sha256_source": None, "row_counts": 0, "expect_tables": 0}
        self.result["verified"] = verified

        missing = [t for t in self.expect_tables if t not in tables]
        if missing:
            database = self.result.get("database")
            of = f" (a dump of database {database!r})" if database else ""
            raise VerifyError(
                "missing_table",
                f"{path}{of} has no data for the expected table(s) {', '.join(missing)}; it has data for "
                f"{', '.join(sorted(tables)[:10]) or 'no table'}" + (" ..." if len(tables) > 10 else ""),
            )
        empty = [t for t in self.expect_tables if tables[t] == 0 or (tables[t] is None and not members[t].data_bytes)]
        if empty:
            raise VerifyError("empty_table", f"{path} has no rows for the expected table(s) {', '.join(empty)}")
        verified["expect_tables"] = len(self.expect_tables)

        if self.manifest and self.manifest.tables:
            expected = self.manifest.tables
            uncountable = sorted(t for t in expected if t in tables and tables[t] is None)
            if uncountable and self.params["level"] != "restore":
                raise VerifyError(
                    "rows_not_countable",
                    f"the data of {', '.join(uncountable[:5])} in {path} is INSERT statements: their rows can "
                    "only be counted by restoring",
                )
            counted = {t: n for t, n in expected.items() if t not in uncountable}
            self._same_counts(tables, counted, f"row counts in {path} differ from manifest {self.manifest.path}")
            verified["row_counts"] = len(expected) - len(uncountable)

        if self.manifest and self.manifest.size is not None and self.manifest.size != self.archive.size:
            raise VerifyError(
                "size_mismatch",
                f"{path} has {self.archive.size} bytes, but manifest {self.manifest.path} records {self.manifest.size}",
            )

        sha256 = self.archive.sha256()
        self.result["sha256"] = sha256
        if self.expected_sha256:
            source = "checksum" if self.sha256_source == "checksum" else f"manifest {self.manifest.path}"
            if sha256 != self.expected_sha256:
                raise VerifyError(
                    "checksum_mismatch",
                    f"the sha256 of {path} is {sha256}, but {source} expects {self.expected_sha256}",
                )
            verified["sha256"] = True
            verified["sha256_source"] = self.sha256_source

    def _level_restore(self) -> None:
        if self.pending is None:
            self._restore_start(background=False)
        self._restore_finish()

    def _restore_start(self, background: bool) -> None:
        """Create the scratch database and load the archive into it, here or in a thread."""
        path = self.params["path"]
        fmt = self.archive.format
        meta = getattr(self.archive, "meta_commands", [])
        if fmt in (FORMAT_PLAIN, FORMAT_PLAIN_GZIP) and meta:
            raise VerifyError(
                "unsafe_sql",
                f"{path} contains psql meta-commands ({'; '.join(meta[:3])}): restoring it could connect to "
                "another database than the scratch one, so the module does not restore it",
            )
        self._refuse_directory_in_container()
        prefix = self.params["scratch_db_prefix"]
        scratch = self.params["restore_database"] or f"{prefix}_{time.strftime('%Y%m%d%H%M%S')}_{secrets.token_hex(4)}"
        restore = {"database": scratch, "tool": None, "seconds": None, "tables": {}, "dropped": False, "kept": False}
        restore["during_read"] = background
        self.result["restore"] = restore
        # In a container the tools cannot read a passfile on the host: PGPASSWORD, passed to the
        # exec by name (module_utils/pg_container.py), never in an argv.
        passfile = None if self.params["container"] else write_passfile(self.params["login_password"], "pg_dump_verify")
        self.pending = {"scratch": scratch, "passfile": passfile, "created": False, "error": None, "tools": None}
        self.pending["env"] = self._pg_env(passfile)
        if background:
            self.pending["thread"] = threading.Thread(target=self._restore_load, daemon=True)
            self.pending["thread"].start()
        else:
            self._restore_load()

    def _restore_load(self) -> None:
        pending, restore = self.pending, self.result["restore"]
        params = self.params
        try:
            # module_utils/pg_scratch.py: the same steps for the drill's scratch database and the
            # real restore's new one (restore_database, restore_keep).
            tools = ScratchRestore(
                self._run,
                self._pg_bin("psql"),
                pending["env"],
                params["maintenance_db"],
                stream=bool(params["container"]),
            )
            pending["tools"] = tools
            tools.create(pending["scratch"], params["restore_create"])
            pending["created"] = True
            start = time.monotonic()
            if self.archive.format in (FORMAT_PLAIN, FORMAT_PLAIN_GZIP):
                restore["tool"] = "psql"
                tools.load_plain(pending["scratch"], params["path"], self.archive.format == FORMAT_PLAIN_GZIP)
            else:
                restore["tool"] = "pg_restore"
                tools.load_archive(
                    self._pg_bin("pg_restore"),
                    pending["scratch"],
                    params["path"],
                    params["restore_jobs"],
                    params["restore_no_owner"],
                )
            restore["seconds"] = round(time.monotonic() - start, 3)
        except VerifyError as exc:
            pending["error"] = exc
        except OSError as exc:
            pending["error"] = VerifyError("unreadable", to_native(exc))

    def _restore_finish(self) -> None:
        pending, restore = self.pending, self.result["restore"]
        keep = self.params["restore_keep"]
        passed = False
        try:
            if pending.get("thread") is not None:
                pending["thread"].join()
            if pending["error"] is not None:
                raise pending["error"]
            restore["tables"] = pending["tools"].count_rows(
                pending["scratch"], self.archive.members, self.params["restore_jobs"]
            )
            if keep:  # compared before it is kept: a database with wrong counts is dropped
                self._compare_restored(restore["tables"])
            passed = True
        finally:
            self.abandon_restore(keep=keep and passed)
        if not keep:
            self._compare_restored(restore["tables"])

    def abandon_restore(self, keep: bool = False) -> None:
        """Wait for a restore still running, drop its database (unless keep), remove the passfile. Idempotent."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        try:
            if pending.get("thread") is not None:
                pending["thread"].join()
            if pending["created"] and keep:
                self.result["restore"]["kept"] = True
            elif pending["created"]:
                pending["tools"].drop(pending["scratch"])
                self.result["restore"]["dropped"] = True
        finally:
            if pending["passfile"]:
                os.unlink(pending["passfile"])

    def _compare_restored(self, restored: dict) -> None:
        tables = self.result.get("tables") or {}
        # Tables dumped as INSERT statements get their count from the restore.
        for name, rows in list(tables.items()):
            if rows is None and name in restored:
                tables[name] = restored[name]
        after = f"after restoring {self.params['path']}, row counts differ from"
        self._same_counts(restored, {t: n for t, n in tables.items() if n is not None}, f"{after} the archive")
        if self.manifest and self.manifest.tables:
            self._same_counts(restored, self.manifest.tables, f"{after} manifest {self.manifest.path}")
            self.result.setdefault("verified", {})["row_counts"] = len(self.manifest.tables)

    def _same_counts(self, actual: dict, expected: dict, what: str) -> None:
        """row_count_mismatch naming the tables (RV(mismatches)) when a count of expected differs."""
        mismatches = compare_counts(actual, expected)
        if mismatches:
            self.result["mismatches"] = mismatches
            raise VerifyError("row_count_mismatch", f"{what}: {describe_mismatches(mismatches)}")

    # ------------------------------------------------------------------ connection and processes

    def _pg_env(self, passfile: str | None) -> dict:
        """libpq variables for psql and pg_restore (run_command adds them to this process's environment)."""
        clear_redirecting_env(passfile=bool(passfile))
        env = libpq_env(self.params, passfile=passfile)
        env.update(
            PGCONNECT_TIMEOUT=str(self.params["connect_timeout"]), PGAPPNAME="pg_dump_verify", PGCLIENTENCODING="UTF8"
        )
        return env

    def _refuse_directory_in_container(self) -> None:
        if self.params["container"] and self.archive.format == "directory":
            raise VerifyError(
                "invalid_argument",
                f"{self.params['path']} is a directory archive, which cannot stream into container "
                f"{self.params['container']}: read it at level content without container, or dump in the custom format",
            )

    def _pg_bin(self, name: str) -> str:
        bin_dir = self.params["pg_bin_dir"]
        if self.params["container"]:
            return tool(name, bin_dir)
        found = find_tool(name, bin_dir)
        if found:
            return found
        if bin_dir:
            raise VerifyError("tool_missing", f"{name} is not in pg_bin_dir {bin_dir}")
        raise VerifyError(
            "tool_missing", f"{name} was not found (looked in /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin and the PATH)"
        )

    def _run(
        self, argv: list, what: str, env: dict | None = None, stdin_path: str | None = None, gunzip: bool = False
    ) -> tuple:
        """Run a tool under coreutils' timeout, so every command has a deadline that names it.

        With the container option, the tool runs in it (docker exec; the variables of env passed by
        name); stdin_path is a file streamed to its stdin (gunzip: decompressed on the way)."""
        timeout = self.params["timeout"]
        # English messages: the checks look for pg_restore's wording.
        update = {**(env or {}), "LC_ALL": "C"}
        if self.params["container"]:
            docker = docker_cli()
            if docker is None:
                raise VerifyError(
                    "tool_missing", f"the docker CLI was not found (container {self.params['container']})"
                )
            argv = exec_argv(docker, self.params["container"], argv, update, stdin=stdin_path is not None)
        wrapper = self.module.get_bin_path("timeout")
        if wrapper:
            argv = [wrapper, "--kill-after=30", str(timeout), *argv]
        if stdin_path is not None:
            rc, stdout, stderr = run_with_stdin(argv, update, stdin_path, gunzip)
        else:
            # errors="replace": a damaged archive's bytes quoted by pg_restore or psql become U+FFFD, never
            # surrogates, which Ansible refuses to carry back ("invalid UTF8 string").
            rc, stdout, stderr = self.module.run_command(argv, environ_update=update, errors="replace")
        if wrapper and rc in (124, 137):
            raise VerifyError("timeout", f"{what} did not finish within {timeout} s (option timeout) and was stopped")
        return rc, stdout, self._mask(stderr)

    def _mask(self, text: str) -> str:
        password = self.params["login_password"]
        return text.replace(password, "********") if password else text


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            level=dict(type="str", default="content", choices=list(LEVELS)),
            manifest=dict(type="path"),
            checksum=dict(type="str"),
            expect_tables=dict(type="list", elements="str", default=[]),
            **postgres_common_argument_spec(),
            maintenance_db=dict(type="str", default="postgres"),
            connect_timeout=dict(type="int", default=10),
            scratch_db_prefix=dict(type="str", default="pg_dump_verify"),
            restore_jobs=dict(type="int", default=1),
            trust_manifest_verification=dict(type="bool", default=False),
            restore_no_owner=dict(type="bool", default=True),
            restore_create=dict(type="dict", default={}),
            restore_database=dict(type="str"),
            restore_keep=dict(type="bool", default=False),
            timeout=dict(type="int", default=3600),
        ),
        required_if=[("restore_keep", True, ("restore_database",))],
        supports_check_mode=True,
    )
    verification = Verification(module)
    try:
        verification.run()
    except Exception as exc:  # an unexpected failure still reports what was found so far
        with contextlib.suppress(Exception):
            verification.abandon_restore()
        verification.result["failed_level"] = verification.current_level
        verification.result["reason"] = "error"
        module.fail_json(
            msg=f"pg_dump_verify: unexpected error: {verification._mask(to_native(exc))}",
            exception=traceback.format_exc(),
            **verification.result,
        )


if __name__ == "__main__":
    main()
