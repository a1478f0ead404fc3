# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dump of pg_backup_dump: pg_dump of an exported snapshot while the rows of every table are
counted in the same snapshot, optionally verified while it is written (pg_restore reading the
same bytes, the counts compared). dump() is the step alone; pg_backup_dump composes it with the
backup directory and lock (module_utils/prepare.py, module_utils/lock.py) and the drop to the
dump's user (processes.as_user). Raises Failed with the fields the module fails with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import (
    CustomArchive,
    RestoreOutputCounter,
    VerifyError,
    compare_counts,
    describe_mismatches,
    directory_sha256,
    file_sha256,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.pg_container import (
    PsqlSession,
    docker_cli,
    exec_argv,
    tool,
)
from ansible_collections.opsbook.webstack.plugins.module_utils.postgres import (
    alarming,
    connect_params,
    find_tool,
    libpq_env,
    quote_ident,
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
                # int(): a psql session in a container (module_utils/pg_container.py) answers in text.
                self.tables[f"{schema}.{name}"] = int(self.cur.fetchone()[0])
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
    if cur.fetchone()[0] in (False, "f"):  # a psql session in a container answers t or f
        return []
    cur.execute("SELECT app, max(name), count(*) FROM public.django_migrations GROUP BY app ORDER BY app")
    return [{"app": app, "latest": latest, "applied": int(applied)} for app, latest, applied in cur.fetchall()]


def _reader_failure(dest: str, read_rc: int | None, read_stderr: str, stopped: bool) -> VerifyError | None:
    """What went wrong with pg_restore's reading (stopped: it quit before the dump ended), or None."""
    failures = alarming(read_stderr)
    if read_rc == 0 and not failures and not stopped:
        return None
    detail = "\n".join(failures) or read_stderr.strip() or f"exit status {read_rc}"
    reason = "decompression_error" if "uncompress" in detail or "decompress" in detail else "pg_restore_failed"
    return VerifyError(reason, f"pg_restore could not read {dest} as it was written: {detail[-1500:]}")


def dump_verified(argv: list, env: dict, dest: str, reader_argv: list, counts_of, stdout=None) -> tuple:
    """Run pg_dump while reading its output once, as it is written.

    reader_argv: ``pg_restore -a -f -`` (through docker exec for a container); stdout: pg_dump's
    output file when it writes to its stdout (in a container) instead of --file.

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
        dump = start(argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout or subprocess.DEVNULL, stderr=dump_err)
        reader = start(reader_argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=read_err)
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


def dump(p: dict, check_mode: bool, result: dict) -> dict:
    """The dump with counts from the same snapshot (verified while written with verify=content).

    With p["container"], every tool runs in that container (module_utils/pg_container.py): the
    snapshot's transaction is a psql session there, pg_dump writes the archive to its stdout, which
    is the file, and pg_restore reads it on its stdin."""
    if os.path.lexists(p["dest"]):
        raise Failed(f"{p['dest']} already exists: a dump never overwrites a file")
    if check_mode:
        return result
    container = p.get("container")
    if container:
        docker = docker_cli()
        if docker is None:
            raise Failed(f"the docker CLI was not found on this host (container {container}); nothing was dumped")
        pg_dump = tool("pg_dump", p["pg_bin_dir"])
    else:
        if _driver is None:
            raise Failed(missing_required_lib("psycopg or psycopg2"), exception=DRIVER_ERROR)
        pg_dump = find_tool("pg_dump", p["pg_bin_dir"])
        if pg_dump is None:
            where = p["pg_bin_dir"] and f"pg_bin_dir {p['pg_bin_dir']}"
            where = where or "/usr/lib/postgresql/*/bin, /usr/pgsql-*/bin or the PATH"
            raise Failed(f"pg_dump was not found in {where}; nothing was dumped")
    started = time.monotonic()
    conn = None
    out = None
    # The password in the tools' environment (PGPASSWORD; for a container, the docker CLI's,
    # passed on by name), never in an argv.
    env = {**os.environ, **libpq_env(p, database=p["database"])}
    try:
        if container:
            cur = conn = PsqlSession(
                docker, container, p["database"], libpq_env(p, database=p["database"]), p["pg_bin_dir"]
            )
        else:
            conn = _driver.connect(**connect_params(p, p["database"]))
            conn.autocommit = True  # the transaction below is explicit
            cur = conn.cursor()
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
        snapshot, server_version = cur.fetchone()
        # The counts run in the exporting transaction while pg_dump reads the same snapshot.
        counter = SnapshotCounter(cur)
        counter.start()
        argv = [pg_dump, f"--snapshot={snapshot}", "--format", p["format"], "--compress", str(p["compress"])]
        if container:
            # The custom format streams: pg_dump writes it to the exec's stdout, which is the file
            # (0600 from its first byte); its TOC then has no data offsets, which pg_restore and
            # the verification read as such (each block is found where it follows the last).
            out = open(os.open(p["dest"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")  # noqa: SIM115
            argv = exec_argv(docker, container, argv, env, stdin=False)
            reader_argv = exec_argv(docker, container, [tool("pg_restore", p["pg_bin_dir"]), "-a", "-f", "-"])
        else:
            argv += ["--file", p["dest"]]
            reader_argv = [os.path.join(os.path.dirname(pg_dump), "pg_restore"), "-a", "-f", "-"]
        if p["format"] == "directory":
            argv += ["--jobs", str(p["jobs"])]
        if p["verify"] == "content":
            rc, stderr, verification, error = dump_verified(argv, env, p["dest"], reader_argv, counter.counts, out)
            result["verification"] = verification
        else:
            # Arguments built here, never a shell string.
            run = subprocess.run(  # noqa: S603
                argv, env=env, stdout=out, stderr=subprocess.PIPE, text=True, errors="replace", check=False
            )
            rc, stderr, error = run.returncode, run.stderr, None
        if out is not None:
            out.close()
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
        version_argv = (
            exec_argv(docker, container, [pg_dump, "--version"], stdin=False) if container else [pg_dump, "--version"]
        )
        version = subprocess.run(version_argv, capture_output=True, text=True, check=False)  # noqa: S603
        cur.execute("ROLLBACK")
    except Failed:
        raise
    except Exception as exc:  # the driver's errors do not share a base class across psycopg 2 and 3
        remove(p["dest"])
        where = f" in container {container}" if container else ""
        what = f"Dump of {p['database']}{where} failed"
        raise Failed(f"{what}: {exc}", exception=traceback.format_exc()) from None
    finally:
        if out is not None and not out.closed:
            out.close()
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
