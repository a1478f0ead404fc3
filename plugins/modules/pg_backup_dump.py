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
  - psycopg (3) or psycopg2 on the host that runs the module
  - pg_dump of the server's major version or newer
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

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.opsbook.webstack.plugins.module_utils.lock import keep_alive
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import (
    CustomArchive,
    RestoreOutputCounter,
    VerifyError,
    compare_counts,
    describe_mismatches,
    directory_sha256,
    file_sha256,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.postgres import (
    alarming,
    connect_params,
    find_tool,
    libpq_env,
    postgres_common_argument_spec,
    quote_ident,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.prepare import (
    PREPARE_SPEC,
    PrepareError,
    check,
    done_or_lock,
    ensure_directory,
    give_back,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.processes import start

try:
    import psycopg as _driver

    DRIVER_ERROR = None
except ImportError:
    try:
        import psycopg2 as _driver

        DRIVER_ERROR = None
    except ImportError:
        _driver = None
        DRIVER_ERROR = traceback.format_exc()

TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 1, 2
"""


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


_TAP_BATCH = 256 << 10


class _ReaderStopped(VerifyError):
    """pg_restore stopped reading before the dump ended: its stderr says why."""


class _PipeTap:
    """Hands the bytes read to a reader process's stdin, in writes of at least _TAP_BATCH bytes
    (the archive is read a few bytes at a time: one write each would cost a system call); a reader
    that stops early stops the follow."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.pending = bytearray()
        self.broken = False

    def __call__(self, data: bytes) -> None:
        self.pending += data
        if len(self.pending) >= _TAP_BATCH:
            self._write()

    def _write(self) -> None:
        try:
            self.pipe.write(self.pending)
        except (BrokenPipeError, OSError):
            self.broken = True
            raise _ReaderStopped("pg_restore_failed", "pg_restore stopped reading the dump") from None
        finally:
            self.pending.clear()

    def close(self) -> None:
        try:
            if self.pending and not self.broken:
                self._write()
            self.pipe.close()
        except (BrokenPipeError, OSError, _ReaderStopped):
            self.broken = True


class _OutputCounter(threading.Thread):
    """Reads pg_restore's output to its end, counting the rows of every COPY block."""

    def __init__(self, stdout) -> None:
        super().__init__(daemon=True)
        self.fd = stdout.fileno()
        self.counter = RestoreOutputCounter()
        self.error: VerifyError | None = None

    def run(self) -> None:
        while True:
            data = os.read(self.fd, 1 << 20)
            if not data:
                break
            if self.error is None:
                try:
                    self.counter.feed(data)
                except VerifyError as exc:
                    self.error = exc  # and read on, so pg_restore never blocks on a full pipe

    def blocks(self) -> list:
        self.join()
        if self.error is not None:
            raise self.error
        return self.counter.finish()


def _read_back(fh) -> str:
    fh.seek(0)
    return fh.read().decode("utf-8", "replace")


class SnapshotCounter(threading.Thread):
    """count(*) of every table on the cursor of the transaction that exported the snapshot, in a
    thread, so counting overlaps the dump; counts() waits and returns them (or raises)."""

    def __init__(self, cur) -> None:
        super().__init__(daemon=True)
        self.cur = cur
        self.tables: dict = {}
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.cur.execute(TABLES_SQL)
            for schema, name in self.cur.fetchall():
                # Identifiers from the catalog, quoted: not user input.
                self.cur.execute(f"SELECT count(*) FROM {quote_ident(schema)}.{quote_ident(name)}")  # noqa: S608
                self.tables[f"{schema}.{name}"] = self.cur.fetchone()[0]
        except Exception as exc:  # the driver's errors do not share a base class across psycopg 2 and 3
            self.error = exc

    def counts(self) -> dict:
        self.join()
        if self.error is not None:
            raise self.error
        return self.tables


def read_migrations(cur) -> list:
    """Applied Django migrations per app, on the cursor of the snapshot's transaction."""
    cur.execute("SELECT to_regclass('public.django_migrations') IS NOT NULL")
    if not cur.fetchone()[0]:
        return []
    cur.execute("SELECT app, max(name), count(*) FROM public.django_migrations GROUP BY app ORDER BY app")
    return [{"app": app, "latest": latest, "applied": applied} for app, latest, applied in cur.fetchall()]


def _reader_failure(dest: str, read_rc: int | None, read_stderr: str, stopped: bool) -> VerifyError | None:
    """What went wrong with pg_restore's reading (stopped: it quit before the dump ended), or None."""
    failures = alarming(read_stderr)
    if read_rc == 0 and not failures and not stopped:
        return None
    detail = "\n".join(failures) or read_stderr.strip() or f"exit status {read_rc}"
    reason = "decompression_error" if "uncompress" in detail or "decompress" in detail else "pg_restore_failed"
    return VerifyError(reason, f"pg_restore could not read {dest} as it was written: {detail[-1500:]}")


def dump_verified(argv: list, env: dict, dest: str, pg_restore: str, counts_of) -> tuple:
    """Run pg_dump while reading its output once, as it is written.

    Here only the archive's framing is read (module_utils.pg_archive.CustomArchive.follow without
    decode: block headers, chunk lengths, the TOC); the same bytes go to ``pg_restore -a -f -``,
    which decompresses every block, and the rows of its COPY output are counted in a thread
    (RestoreOutputCounter). One decompression, by the tool a restore uses. counts_of() gives the
    snapshot's counts (waiting for them). Returns (pg_dump's exit status, or None when it was
    stopped because its output failed; its stderr; the verification dict; the VerifyError or
    None). A pg_dump that failed on its own is reported as such by the caller."""
    with tempfile.TemporaryFile() as dump_err, tempfile.TemporaryFile() as read_err:
        # Arguments are built by this module, never a shell string.
        # Both at once, with pipes (module_utils.processes: run_command runs one command to its end).
        dump = start(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=dump_err)
        reader = start([pg_restore, "-a", "-f", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=read_err)
        output = _OutputCounter(reader.stdout)
        output.start()
        tap = _PipeTap(reader.stdin)
        live = CustomArchive(dest, growing=True)
        error = None
        ended = []

        def running() -> bool:
            if dump.poll() is None:
                return True
            if not ended:
                ended.append(time.monotonic())
            return False

        try:
            live.follow(running, tap, decode=False)
        except VerifyError as exc:
            error = exc
        finally:
            tap.close()
            killed = dump.poll() is None and error is not None
            if killed:
                dump.kill()
            dump.wait()
            # A pg_dump stopped here did not fail: its output did (rc None).
            rc = None if killed else dump.returncode
            if error is not None and not isinstance(error, _ReaderStopped) and reader.poll() is None:
                reader.kill()
            read_rc = reader.wait()
            output.join()
            reader.stdout.close()
        dump_stderr = _read_back(dump_err)
        read_stderr = _read_back(read_err)
    verification = {"level": "content", "during_dump": True}
    if isinstance(error, _ReaderStopped):
        error = _reader_failure(dest, read_rc, read_stderr, stopped=True)
    if rc != 0 or error is not None:  # rc None: stopped because its output failed
        return rc, dump_stderr, verification, error
    try:
        failure = _reader_failure(dest, read_rc, read_stderr, stopped=tap.broken)
        if failure is not None:
            raise failure
        final = live.check_finished()
        final.take_restore_counts(output.blocks())
        tables = final.tables()
        counts = counts_of()
        mismatches = compare_counts(tables, counts)
        extra = sorted(set(tables) - set(counts))
        if mismatches:
            verification["mismatches"] = mismatches
            raise VerifyError(
                "row_count_mismatch",
                f"row counts read from {dest} differ from the counts taken in the dump's snapshot: "
                f"{describe_mismatches(mismatches)}",
            )
        if extra:
            raise VerifyError(
                "row_count_mismatch", f"{dest} holds data of tables that were not counted: {', '.join(extra[:5])}"
            )
    except VerifyError as exc:
        return rc, dump_stderr, verification, exc
    verification.update(
        tables=len(tables),
        rows=sum(n for n in tables.values() if n is not None),
        data_bytes=sum(m.data_bytes or 0 for m in final.members),
        pg_restore_read=True,
        seconds_after_dump=round(time.monotonic() - (ended[0] if ended else time.monotonic()), 3),
    )
    return rc, dump_stderr, verification, None


class Failed(Exception):
    """The module fails with msg and these fields (over the result's)."""

    def __init__(self, msg: str, **fields) -> None:
        super().__init__(msg)
        self.fields = dict(fields, msg=msg)


def drop_privileges(uid: int, gid: int) -> None:
    """Run as uid from here on (primary group gid and the user's supplementary groups), as
    become_user would: the dump's files are the user's, and peer authentication sees the user."""
    user = pwd.getpwuid(uid)
    os.initgroups(user.pw_name, gid)
    os.setgid(gid)
    os.setuid(uid)
    os.environ.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    os.chdir("/")  # root's working directory may not be readable by the user


def as_user(uid: int, gid: int, body, result: dict, warnings: list) -> tuple[bool, dict]:
    """Run body() in a child process as uid; (succeeded, the result's fields).

    A child, not the module's own process: Ansible's module code loads parts of itself lazily
    from a payload only root can read, and the module answers Ansible as root. The child sends
    plain JSON through a pipe."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            try:
                drop_privileges(uid, gid)
                payload = {"ok": True, "fields": body()}
            except Failed as exc:
                payload = {"ok": False, "fields": {**result, **exc.fields}}
            payload["warnings"] = warnings
            data = json.dumps(payload, default=str)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the module
            fields = {**result, "msg": f"the dump as uid {uid} failed: {exc}", "exception": traceback.format_exc()}
            data = json.dumps({"ok": False, "fields": fields, "warnings": []}, default=str)
        with os.fdopen(write_fd, "w") as pipe:
            pipe.write(data)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        data = pipe.read()
    _pid, status = os.waitpid(pid, 0)
    if not data:
        return False, {
            **result,
            "msg": f"the dump's process as uid {uid} ended without a result (wait status {status})",
        }
    payload = json.loads(data)
    warnings[:] = payload["warnings"]
    return payload["ok"], payload["fields"]


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


def dump(p: dict, check_mode: bool, result: dict) -> dict:
    """The dump with counts from the same snapshot (verified while written with verify=content)."""
    if os.path.lexists(p["dest"]):
        raise Failed(f"{p['dest']} already exists: a dump never overwrites a file")
    if check_mode:
        return result
    if _driver is None:
        raise Failed(missing_required_lib("psycopg or psycopg2"), exception=DRIVER_ERROR)

    pg_dump = find_tool("pg_dump", p["pg_bin_dir"])
    if pg_dump is None:
        where = p["pg_bin_dir"] and f"pg_bin_dir {p['pg_bin_dir']}"
        where = where or "/usr/lib/postgresql/*/bin, /usr/pgsql-*/bin or the PATH"
        raise Failed(f"pg_dump was not found in {where}; nothing was dumped")
    started = time.monotonic()
    conn = None
    try:
        conn = _driver.connect(**connect_params(p, p["database"]))
        conn.autocommit = True  # the transaction below is explicit
        cur = conn.cursor()
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
        snapshot, server_version = cur.fetchone()
        # The counts run in the exporting transaction while pg_dump reads the same snapshot.
        counter = SnapshotCounter(cur)
        counter.start()
        # The password in pg_dump's environment (PGPASSWORD), never in its argv.
        env = {**os.environ, **libpq_env(p, database=p["database"])}
        argv = [pg_dump, f"--snapshot={snapshot}", "--format", p["format"], "--compress", str(p["compress"])]
        argv += ["--file", p["dest"]]
        if p["format"] == "directory":
            argv += ["--jobs", str(p["jobs"])]
        if p["verify"] == "content":
            pg_restore = os.path.join(os.path.dirname(pg_dump), "pg_restore")
            rc, stderr, verification, error = dump_verified(argv, env, p["dest"], pg_restore, counter.counts)
            result["verification"] = verification
        else:
            run = subprocess.run(argv, env=env, capture_output=True, text=True, errors="replace", check=False)  # noqa: S603
            rc, stderr, error = run.returncode, run.stderr, None
        if rc not in (0, None):
            remove(p["dest"])
            raise Failed(f"pg_dump failed (exit {rc}): {stderr.strip()}")
        if error is not None:
            remove(p["dest"])
            result["verification"]["reason"] = error.reason
            raise Failed(
                f"The dump of {p['database']} failed verification while it was written ({error.reason}): "
                f"{error.message}. It was removed."
            )
        tables = counter.counts()
        migrations = read_migrations(cur) if p["migrations"] == "django" else []
        version = subprocess.run([pg_dump, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
        cur.execute("ROLLBACK")
    except Failed:
        raise
    except Exception as exc:  # the driver's errors do not share a base class across psycopg 2 and 3
        remove(p["dest"])
        raise Failed(f"Dump of {p['database']} failed: {exc}", exception=traceback.format_exc()) from None
    finally:
        if conn is not None:
            conn.close()
    is_dir = os.path.isdir(p["dest"])
    if is_dir:
        size = sum(os.path.getsize(os.path.join(p["dest"], n)) for n in os.listdir(p["dest"]))
    else:
        size = os.path.getsize(p["dest"])
    os.chmod(p["dest"], 0o700 if is_dir else 0o600)
    result.update(
        snapshot=snapshot,
        tables=tables,
        migrations=migrations,
        size=size,
        sha256=directory_sha256(p["dest"]) if is_dir else file_sha256(p["dest"]),
        server_version=server_version.split()[0],
        pg_dump_version=version.stdout.strip().split()[-1] if version.returncode == 0 else "unknown",
        duration=round(time.monotonic() - started, 3),
    )
    return result


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
        ok, fields = as_user(*owner, lambda: work(p, module.check_mode, result, directory, warnings), result, warnings)
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
