# Copyright: opsbook engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading a pg_dump archive into a new database: create it, restore into it, count its rows, drop it.

One copy for both uses of pg_dump_verify's restore level: the restore role's drill (a scratch
database, dropped) and its real restore (the new database, kept and then swapped in), so the two
cannot drift apart. The tools run through the caller's run(argv, what, env) -> (rc, stdout,
stderr), which gives every command a deadline and masks the password; failures raise
VerifyError("restore_error", ...).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
import threading

from ansible_collections.opsbook.webstack.plugins.module_utils.pg_archive import VerifyError
from ansible_collections.opsbook.webstack.plugins.module_utils.postgres import alarming, quote_ident, quote_literal

# restore_create's keys: the CREATE DATABASE keyword, and whether the value is an identifier or a literal.
CREATE_KEYS = {"owner": ("OWNER", "ident"), "template": ("TEMPLATE", "ident"), "encoding": ("ENCODING", "literal"),
               "lc_collate": ("LC_COLLATE", "literal"), "lc_ctype": ("LC_CTYPE", "literal")}  # fmt: skip


def tail(text: str, lines: int = 15, limit: int = 2000) -> str:
    out = "\n".join(text.strip().splitlines()[-lines:])
    return out[-limit:]


def create_sql(database: str, options: dict | None) -> str:
    """CREATE DATABASE with the options (CREATE_KEYS); unset or empty ones are the server's defaults."""
    sql = f"CREATE DATABASE {quote_ident(database)}"
    for key, value in sorted((options or {}).items()):
        if value in (None, ""):
            continue
        keyword, kind = CREATE_KEYS[key]
        sql += f" {keyword} " + (quote_ident(str(value)) if kind == "ident" else quote_literal(str(value)))
    return sql


class ScratchRestore:
    """The tools' side of a restore into a new database; the caller decides when to keep or drop it."""

    def __init__(self, run, psql: str, env: dict, maintenance_db: str, stream: bool = False) -> None:
        """stream: the tools run in a container (pg_dump_verify's container option): the archive is
        streamed to their stdin (run's stdin_path), so pg_restore reads it with one job."""
        self.run = run
        self.psql_bin = psql
        self.env = env
        self.maintenance_db = maintenance_db
        self.stream = stream

    def create(self, database: str, options: dict | None) -> None:
        self.psql(self.maintenance_db, create_sql(database, options), f"creating the scratch database {database}")

    def load_archive(self, pg_restore: str, database: str, path: str, jobs: int, no_owner: bool) -> None:
        """pg_restore --exit-on-error; a message about missing or unreadable data fails it even when it exits 0."""
        argv = [pg_restore, "--no-password", "--dbname", database, "--exit-on-error"]
        if no_owner:
            argv += ["--no-owner", "--no-privileges"]
        what = "pg_restore into the scratch database"
        if self.stream:  # pg_restore reads a pipe in order: one job (--jobs needs a file it can seek in)
            rc, _output, stderr = self.run(argv, what, env=self.env, stdin_path=path)
        else:
            if jobs > 1:
                argv += ["--jobs", str(jobs)]
            argv.append(path)
            rc, _output, stderr = self.run(argv, what, env=self.env)
        if rc != 0 or alarming(stderr):
            raise VerifyError(
                "restore_error",
                f"pg_restore into scratch database {database} failed (exit status {rc}): "
                f"{tail(stderr) or 'no message'}",
            )

    def load_plain(self, database: str, path: str, compressed: bool) -> None:
        """psql --single-transaction ON_ERROR_STOP; gzip-compressed SQL is fed through a FIFO."""
        # -o /dev/null: the dump's SELECTs (set_config, setval, lowrite) print rows nobody reads.
        argv = [self.psql_bin, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction"]
        argv += ["-o", os.devnull, "-d", database]
        if self.stream:  # the SQL on psql's stdin, decompressed on the way
            rc, _output, stderr = self.run(
                argv, "psql restoring the SQL", env=self.env, stdin_path=path, gunzip=compressed
            )
        elif not compressed:
            rc, _output, stderr = self.run([*argv, "-f", path], "psql restoring the SQL", env=self.env)
        else:
            workdir = tempfile.mkdtemp(prefix="pg_dump_verify-")
            fifo = os.path.join(workdir, "dump.sql")
            os.mkfifo(fifo, 0o600)
            feeder = threading.Thread(target=_feed_fifo, args=(path, fifo), daemon=True)
            feeder.start()
            try:
                rc, _output, stderr = self.run([*argv, "-f", fifo], "psql restoring the SQL", env=self.env)
            finally:
                # If psql never opened the FIFO (no connection), the feeder still waits in open().
                with contextlib.suppress(OSError):
                    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
                feeder.join(timeout=10)
                shutil.rmtree(workdir, ignore_errors=True)
        if rc != 0:
            raise VerifyError(
                "restore_error",
                f"psql restoring {path} into scratch database {database} failed (exit status {rc}): "
                f"{tail(stderr) or 'no message'}",
            )

    def count_rows(self, database: str, members: list, jobs: int) -> dict:
        """Exact count(*) of every table member, on `jobs` connections at once (the largest tables spread first)."""
        tables = sorted((m for m in members if m.is_table), key=lambda m: m.data_bytes or m.stored_bytes, reverse=True)
        if not tables:
            return {}
        buckets: list = [[] for _bucket in range(min(jobs, len(tables)))]
        loads = [0] * len(buckets)
        for member in tables:
            i = loads.index(min(loads))
            buckets[i].append(member)
            loads[i] += member.data_bytes or member.stored_bytes or 1
        results: list = [None] * len(buckets)

        def count(i: int) -> None:
            try:
                results[i] = self._count_bucket(database, buckets[i])
            except VerifyError as exc:
                results[i] = exc

        threads = [threading.Thread(target=count, args=(i,), daemon=True) for i in range(len(buckets))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counts: dict = {}
        for outcome in results:
            if isinstance(outcome, VerifyError):
                raise outcome
            counts.update(outcome)
        return counts

    def _count_bucket(self, database: str, members: list) -> dict:
        selects = []
        for member in members:
            relation = quote_ident(member.table)
            if member.schema:
                relation = f"{quote_ident(member.schema)}.{relation}"
            # Identifiers and the literal are quoted above: the names come from the archive, not a user.
            selects.append(f"SELECT {quote_literal(member.name)} AS t, count(*) AS n FROM {relation}")  # noqa: S608
        sql = "SELECT coalesce(json_object_agg(t, n), '{}') FROM (" + " UNION ALL ".join(selects) + ") AS c"  # noqa: S608 quoted above
        out = self.psql(database, sql, "counting rows in the scratch database")
        try:
            return json.loads(out.strip() or "{}")
        except ValueError:
            raise VerifyError("restore_error", f"unexpected answer when counting rows: {out[:200]!r}") from None

    def drop(self, database: str) -> None:
        what = f"dropping the scratch database {database}"
        try:
            self.psql(self.maintenance_db, f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE)", what)
        except VerifyError as exc:
            if "syntax error" not in exc.message:
                raise
            # Servers before PostgreSQL 13 have no WITH (FORCE).
            self.psql(self.maintenance_db, f"DROP DATABASE IF EXISTS {quote_ident(database)}", what)

    def psql(self, database: str, sql: str, what: str) -> str:
        # --no-password: never prompt on a terminal; a missing password is an error that says so.
        argv = [self.psql_bin, "-X", "-q", "--no-password", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database]
        rc, stdout, stderr = self.run([*argv, "-c", sql], what, env=self.env)
        if rc != 0:
            raise VerifyError("restore_error", f"{what} failed (psql exit status {rc}): {tail(stderr) or 'no message'}")
        return stdout


def _feed_fifo(path: str, fifo: str) -> None:
    """Decompress the plain SQL into the FIFO psql reads: no copy on disk, nothing held in memory."""
    try:
        with open(fifo, "wb") as out, gzip.open(path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
    except (OSError, EOFError):
        pass  # psql stopped reading: its exit status and messages tell why
